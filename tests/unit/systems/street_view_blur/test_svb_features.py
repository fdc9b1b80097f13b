"""Detection targets and augmentation: peaks at centres, boxes follow the flips."""

from __future__ import annotations

import numpy as np
import torch

from mlsd.systems.street_view_blur.features import augment, centernet_targets, to_tensor


def test_targets_peak_at_the_centre_cell_with_size_and_offset() -> None:
    boxes = [np.array([[1, 10.0, 20.0, 16.0, 6.0]])]  # a plate centred at (18, 23)
    heat, size, offset, mask = centernet_targets(boxes, 2, 24, 32, 4)
    assert heat.shape == (1, 2, 24, 32)
    iy, ix = 23 // 4, 18 // 4
    assert heat[0, 1, iy, ix] == 1.0 and heat[0, 0].max() == 0.0
    assert mask.sum() == 1 and mask[0, iy, ix] == 1
    np.testing.assert_allclose(size[0, :, iy, ix].numpy(), np.log([16.0, 6.0]), rtol=1e-6)
    np.testing.assert_allclose(offset[0, :, iy, ix].numpy(), [18 / 4 - ix, 23 / 4 - iy])


def test_flipped_images_carry_flipped_boxes() -> None:
    img = np.zeros((4, 16, 32, 3), np.uint8)
    img[:, 2:6, 1:5] = 255  # a bright square at x 1..4
    boxes = [np.array([[0, 1.0, 2.0, 4.0, 4.0]]) for _ in range(4)]
    x, out = augment(to_tensor(img), boxes, torch.Generator().manual_seed(3))
    for i in range(4):
        bright = x[i].mean(0).numpy() > x[i].mean().item() + 0.5
        cols = np.flatnonzero(bright.any(0))
        assert abs(cols.min() - out[i][0, 1]) <= 1, (i, cols, out[i])
    assert {float(b[0, 1]) for b in out} <= {1.0, 27.0}
