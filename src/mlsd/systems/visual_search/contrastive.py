"""Contrastive training of the image encoder: InfoNCE with in-batch negatives (book ch. 2).

The chapter trains the embedding model with contrastive learning: for a query image, one
positive image (the same product) and the other images of the batch as negatives; the loss is
the cross-entropy of picking the positive among all candidates from their similarities
(InfoNCE; Oord et al., 2018; SimCLR, Chen et al., 2020). Here

* a positive pair is two different photos of the same product (or of the same class for
  real data), each further augmented (random crop-and-resize, rotation, flip, brightness and
  colour jitter, noise: :func:`augment`); an image alone in its group pairs with itself, so the
  pair is two augmentations of one image;
* the logits are cosine similarities over a temperature, ``(B, B)`` between the two views, and
  the loss is symmetric (view 1 → view 2 and back);
* other pairs of the same group in a batch are *false negatives*: they are masked out of the
  softmax (with class labels a batch always holds several images of one class).
"""

from __future__ import annotations

import logging
import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlsd.systems.visual_search.model import to_tensor
from mlsd.training import torch_threads

log = logging.getLogger(__name__)


def augment(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop-resize, rotation, flip, brightness / contrast / colour jitter and noise.

    ``x``: ``(B, 3, S, S)`` centred images; the output has the same shape.
    """
    b = x.shape[0]

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand((b, *shape), generator=generator)

    angle = u(-0.5, 0.5)
    scale = u(0.7, 1.0)  # zoom in: the crop covers 70-100% of the frame
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, u(-0.2, 0.2)], 1),
            torch.stack([sin * flip, cos, u(-0.2, 0.2)], 1),
        ],
        1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)
    out = out * u(0.7, 1.3, 1, 1, 1) + u(-0.15, 0.15, 1, 1, 1)  # contrast, brightness
    out = out * u(0.85, 1.15, 3, 1, 1)  # colour cast
    out = out + 0.04 * torch.randn(out.shape, generator=generator)
    return out.clamp(-0.5, 0.5)


def info_nce(
    z1: torch.Tensor, z2: torch.Tensor, groups: torch.Tensor, temperature: float
) -> torch.Tensor:
    """Symmetric InfoNCE between two views ``(B, D)``; same-group off-diagonal pairs are masked."""
    z1, z2 = F.normalize(z1, dim=1), F.normalize(z2, dim=1)
    logits = z1 @ z2.T / temperature  # (B, B)
    same = groups[:, None] == groups[None, :]
    false_neg = same & ~torch.eye(len(groups), dtype=torch.bool)
    logits = logits.masked_fill(false_neg, -1e9)
    target = torch.arange(len(groups))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def sample_pairs(
    groups: np.ndarray, batch_size: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(anchor, positive)`` of a batch: distinct groups where possible, and for each
    anchor another image of its group (itself when it is alone)."""
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = np.split(np.argsort(inverse, kind="stable"), np.cumsum(np.bincount(inverse))[:-1])
    n_groups = len(uniq)
    chosen = rng.choice(n_groups, size=batch_size, replace=batch_size > n_groups)
    anchors = np.empty(batch_size, dtype=np.int64)
    positives = np.empty(batch_size, dtype=np.int64)
    for i, g in enumerate(chosen):
        m = members[g]
        if len(m) == 1:
            anchors[i] = positives[i] = m[0]
        else:
            a, p = rng.choice(len(m), size=2, replace=False)
            anchors[i], positives[i] = m[a], m[p]
    return anchors, positives


def train_info_nce(
    net: nn.Module,
    images: np.ndarray,
    groups: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    lr: float,
    temperature: float,
    seed: int,
    num_threads: int = 1,
) -> list[float]:
    """Train ``net`` in place for ``steps`` batches of positive pairs; return the loss per step.

    Adam with a cosine learning-rate decay; the caller's global torch RNG is left untouched.
    """
    if len(images) != len(groups):
        raise ValueError(f"{len(images)} images but {len(groups)} group labels")
    if len(images) < 2:
        raise ValueError("contrastive training needs at least two images")
    rng = np.random.default_rng(seed)
    batch = min(batch_size, len(images))
    group_codes = torch.from_numpy(np.unique(groups, return_inverse=True)[1].astype(np.int64))
    losses: list[float] = []
    with torch_threads(num_threads), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=1e-5)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda s: 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps))
        )
        net.train()
        for step in range(steps):
            a, p = sample_pairs(groups, batch, rng)
            x1 = augment(to_tensor(images[a]), gen)
            x2 = augment(to_tensor(images[p]), gen)
            loss = info_nce(net(x1), net(x2), group_codes[a], temperature)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
            if step % 50 == 0:
                log.debug("step %d: InfoNCE %.4f", step, losses[-1])
    net.eval()
    return losses
