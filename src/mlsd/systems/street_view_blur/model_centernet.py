"""The trained one-stage detector: a small anchor-free CenterNet in PyTorch, on the CPU.

The network predicts, on a grid of stride 4, one heatmap per class (a peak at each object's
centre), the box size (log width, log height) and the centre's sub-cell offset. Decoding keeps
the heatmap's local maxima (a 3×3 max-pool: CenterNet's own suppression), reads the box at each,
then runs per-class non-maximum suppression (OpenCV's ``NMSBoxes``) to remove what overlaps.

Training (:meth:`CenterNetDetector.fit`) uses the framework's one loop (:func:`mlsd.training.
train_loop`) with flips and photometric jitter (:func:`~.features.augment`), the penalty-reduced
focal loss of CenterNet plus **hard-negative mining** (the mean loss of the ``k`` highest-scoring
background cells of each batch, ``k`` = three per object: the signs and round things that look
like plates and faces), and L1 losses on size and offset at the centres. ``input_scale`` runs
the same network on shrunken images: the second input resolution of the speed / accuracy table.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from mlsd.model_io import SavedAsData
from mlsd.rng import seed_of
from mlsd.systems.street_view_blur.features import (
    augment,
    boxes_by_image,
    centernet_targets,
    resize_images,
    to_tensor,
)
from mlsd.systems.street_view_blur.model_nms import DETECTION_COLUMNS, nms_frame
from mlsd.systems.street_view_blur.world import CLASSES
from mlsd.training import TrainHistory, train_loop

STRIDE = 4


class ConvBlock(nn.Sequential):
    """3×3 convolution, batch norm, ReLU."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=True),
        )


class TinyCenterNet(nn.Module):
    """Backbone to stride 8, one top-down fusion back to stride 4, three heads."""

    def __init__(self, width: int, n_classes: int) -> None:
        super().__init__()
        w = width
        self.stem = ConvBlock(3, w, stride=2)  # (n, w, H/2, W/2)
        self.stage4 = nn.Sequential(ConvBlock(w, 2 * w, 2), ConvBlock(2 * w, 2 * w))  # H/4
        self.stage8 = nn.Sequential(ConvBlock(2 * w, 4 * w, 2), ConvBlock(4 * w, 4 * w))  # H/8
        self.lateral = nn.Conv2d(4 * w, 2 * w, 1)
        self.fuse = ConvBlock(2 * w, 2 * w)  # (n, 2w, H/4, W/4)
        self.heatmap = nn.Sequential(ConvBlock(2 * w, 2 * w), nn.Conv2d(2 * w, n_classes, 1))
        self.size = nn.Sequential(ConvBlock(2 * w, 2 * w), nn.Conv2d(2 * w, 2, 1))
        self.offset = nn.Conv2d(2 * w, 2, 1)
        last = self.heatmap[-1]
        assert isinstance(last, nn.Conv2d) and last.bias is not None
        nn.init.constant_(last.bias, -2.19)  # start at p = 0.1: the focal loss's usual prior

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        f4 = self.stage4(self.stem(x))  # (n, 2w, h, w)
        f8 = self.stage8(f4)  # (n, 4w, h/2, w/2)
        up = F.interpolate(self.lateral(f8), size=f4.shape[-2:], mode="nearest")
        f = self.fuse(f4 + up)
        return self.heatmap(f), self.size(f), self.offset(f)  # logits (n,C,h,w), (n,2,..), (..)


def centernet_loss(
    out: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    targets: tuple[torch.Tensor, ...],
    hard_negative_weight: float,
) -> torch.Tensor:
    """Focal loss on the heatmaps + hard-negative mining + L1 on size and offset."""
    logits, size, offset = out
    heat, t_size, t_offset, mask = targets
    p = torch.sigmoid(logits).clamp(1e-4, 1 - 1e-4)
    pos = heat.eq(1.0).float()
    n_pos = max(float(pos.sum()), 1.0)
    pos_loss = (torch.log(p) * (1 - p) ** 2 * pos).sum()
    neg_loss = (torch.log(1 - p) * p**2 * (1 - heat) ** 4 * (1 - pos)).sum()
    loss = -(pos_loss + neg_loss) / n_pos
    if hard_negative_weight > 0:
        background = -torch.log(1 - p) * (heat < 0.05).float()
        k = min(int(3 * n_pos) + 4, background.numel())
        loss = loss + hard_negative_weight * background.flatten().topk(k).values.mean()
    m = mask.unsqueeze(1)
    reg = (F.l1_loss(size * m, t_size * m, reduction="sum") * 0.1) + F.l1_loss(
        offset * m, t_offset * m, reduction="sum"
    )
    return loss + reg / n_pos


class CenterNetDetector(BaseEstimator, SavedAsData):
    """A CenterNet-style detector of faces and plates (scikit-learn estimator conventions)."""

    def __init__(
        self,
        width: int = 16,
        input_width: int = 128,
        input_height: int = 96,
        input_scale: float = 1.0,
        epochs: int = 10,
        batch_size: int = 16,
        lr: float = 3e-3,
        hard_negative_weight: float = 0.5,
        augment: bool = True,
        num_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.width = width
        self.input_width = input_width
        self.input_height = input_height
        self.input_scale = input_scale
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.hard_negative_weight = hard_negative_weight
        self.augment = augment
        self.num_threads = num_threads
        self.random_state = random_state

    @property
    def net_size(self) -> tuple[int, int]:
        """The network's input ``(width, height)``."""
        return (
            max(8, round(self.input_width * self.input_scale)),
            max(8, round(self.input_height * self.input_scale)),
        )

    def _empty_module(self, name: str) -> Any:
        return TinyCenterNet(self.width, len(CLASSES))

    def _inputs(self, images: np.ndarray) -> torch.Tensor:
        nw, nh = self.net_size
        return to_tensor(resize_images(images, nw, nh))

    def fit(self, images: np.ndarray, boxes: pd.DataFrame) -> CenterNetDetector:
        """Train on ``images`` (any size) and their boxes (``image, label, x, y, w, h``)."""
        seed = seed_of(self.random_state, "street-view/centernet")
        nw, nh = self.net_size
        sx, sy = nw / images.shape[2], nh / images.shape[1]
        per_image = [b * np.array([1, sx, sy, sx, sy]) for b in boxes_by_image(boxes, len(images))]
        x_all = self._inputs(images)
        n = len(images)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = TinyCenterNet(self.width, len(CLASSES))
        out_h, out_w = net(x_all[:1])[0].shape[-2:]
        n_steps = self.epochs * math.ceil(n / self.batch_size)

        def batches(epoch: int, g: torch.Generator) -> Any:
            order = torch.randperm(n, generator=g)
            for s in range(0, n, self.batch_size):
                idx = order[s : s + self.batch_size]
                x, b = x_all[idx], [per_image[int(i)] for i in idx]
                if self.augment:
                    x, b = augment(x, b, g)
                yield (x, *centernet_targets(b, len(CLASSES), out_h, out_w, STRIDE))

        def loss(m: nn.Module, batch: Any) -> torch.Tensor:
            return centernet_loss(m(batch[0]), batch[1:], self.hard_negative_weight)

        def lr_at(step: int) -> float:  # linear warm-up, cosine decay
            warm = max(1, n_steps // 20)
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, n_steps - warm)))

        history: TrainHistory = train_loop(
            net,
            batches,
            loss,
            epochs=self.epochs,
            lr=self.lr,
            seed=seed,
            lr_at_step=lr_at,
            num_threads=self.num_threads,
        )
        self.net_ = net.eval()
        self.train_loss_ = [float(v) for v in history.train_loss]
        return self

    @torch.no_grad()
    def raw(self, images: np.ndarray, batch: int = 64) -> np.ndarray:
        """The class heatmaps, ``(n, C, h, w)`` probabilities (before peak picking)."""
        outs = [
            torch.sigmoid(self.net_(self._inputs(images[s : s + batch]))[0])
            for s in range(0, len(images), batch)
        ]
        return torch.cat(outs).numpy() if outs else np.zeros((0, len(CLASSES), 1, 1))

    @torch.no_grad()
    def detect(
        self, images: np.ndarray, min_score: float = 0.02, max_det: int = 50, batch: int = 64
    ) -> pd.DataFrame:
        """Detections (``DETECTION_COLUMNS``) in the pixels of ``images``."""
        h, w = images.shape[1:3]
        nw, nh = self.net_size
        frames = []
        for s in range(0, len(images), batch):
            logits, size, offset = self.net_(self._inputs(images[s : s + batch]))
            frames.append(decode(logits, size, offset, w / nw, h / nh, min_score, max_det, first=s))
        return nms_frame(pd.concat(frames, ignore_index=True)) if frames else nms_frame(None)


def decode(
    logits: torch.Tensor,
    size: torch.Tensor,
    offset: torch.Tensor,
    sx: float,
    sy: float,
    min_score: float,
    max_det: int,
    first: int = 0,
) -> pd.DataFrame:
    """Peaks of the heatmaps (3×3 local maxima) above ``min_score``, as boxes in image pixels
    (``sx``, ``sy``: image pixels per network input pixel)."""
    heat = torch.sigmoid(logits)  # (n, C, h, w)
    peaks = heat * (F.max_pool2d(heat, 3, stride=1, padding=1) == heat).float()
    n, c, h, w = heat.shape
    k = min(max_det * 2, c * h * w)
    scores, idx = peaks.reshape(n, -1).topk(k)  # (n, k)
    label = idx // (h * w)
    cell = idx % (h * w)
    iy, ix = cell // w, cell % w
    gather = cell.unsqueeze(1).expand(-1, 2, -1)  # (n, 2, k)
    bw_bh = size.reshape(n, 2, -1).gather(2, gather).exp()
    off = offset.reshape(n, 2, -1).gather(2, gather)
    cx = (ix.float() + off[:, 0]) * STRIDE
    cy = (iy.float() + off[:, 1]) * STRIDE
    keep = scores >= min_score
    rows = torch.nonzero(keep, as_tuple=True)
    bw, bh = bw_bh[:, 0][rows], bw_bh[:, 1][rows]
    frame = pd.DataFrame(
        {
            "image": (rows[0] + first).numpy().astype(np.int64),
            "label": label[rows].numpy().astype(np.int64),
            "x": ((cx[rows] - bw / 2) * sx).numpy().astype(np.float64),
            "y": ((cy[rows] - bh / 2) * sy).numpy().astype(np.float64),
            "w": (bw * sx).numpy().astype(np.float64),
            "h": (bh * sy).numpy().astype(np.float64),
            "score": scores[rows].numpy().astype(np.float64),
        }
    )
    return frame[list(DETECTION_COLUMNS)]
