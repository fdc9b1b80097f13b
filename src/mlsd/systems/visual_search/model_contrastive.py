"""The contrastive CNN: its network and its training, InfoNCE with in-batch negatives (book ch. 2).

The chapter trains the embedding model with contrastive learning: for a query image, one
positive image (the same product) and the other images of the batch as negatives; the loss is
the cross-entropy of picking the positive among all candidates from their similarities
(InfoNCE; Oord et al., 2018; SimCLR, Chen et al., 2020). Here

* the network (:class:`ConvNet`) has four 3×3 conv layers (BatchNorm, ReLU, two max-pools),
  global average pooling and a linear head; its weights are drawn from a seeded
  ``torch.Generator`` (:func:`new_convnet`), never from torch's global generator;
* a positive pair is two different photos of the same product (or of the same class for
  real data), each further augmented (random crop-and-resize, rotation, flip, brightness and
  colour jitter, noise: :func:`augment`); an image alone in its group pairs with itself, so the
  pair is two augmentations of one image; small grey images get their own, gentler policy
  (:data:`GREY`: no flip, no colour, small rotations and shifts; :func:`policy_for`);
* the logits are cosine similarities over a temperature, ``(B, B)`` between the two views, and
  the loss is symmetric (view 1 → view 2 and back);
* other pairs of the same group in a batch are *false negatives*: they are masked out of the
  softmax (with class labels a batch always holds several images of one class).

Training runs through :func:`mlsd.training.train_loop`, the one loop of mlsd: the batches are
augmented pairs, the batch loss is InfoNCE, the learning rate decays on a cosine.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlsd.rng import rng, seed_of
from mlsd.systems.visual_search.features import to_tensor
from mlsd.training import Batch, TrainHistory, train_loop

log = logging.getLogger(__name__)

WEIGHT_DECAY = 1e-5


def _conv_block(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()
    )


class ConvNet(nn.Module):
    """Conv stages and a linear head: ``(B, 3, S, S) -> (B, dim)`` (not normalised)."""

    def __init__(self, width: int = 32, dim: int = 64) -> None:
        super().__init__()
        self.features = nn.Sequential(
            _conv_block(3, width),
            nn.MaxPool2d(2),  # S/2
            _conv_block(width, 2 * width),
            nn.MaxPool2d(2),  # S/4
            _conv_block(2 * width, 4 * width),
            _conv_block(4 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1),  # (B, 4w, 1, 1)
        )
        self.head = nn.Linear(4 * width, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))  # (B, dim)


def empty_convnet(width: int, dim: int) -> ConvNet:
    """A :class:`ConvNet` with uninitialised weights (built on the meta device, so building it
    draws nothing from torch's global generator): for :meth:`load_state_dict`."""
    with torch.device("meta"):
        net = ConvNet(width, dim)
    return net.to_empty(device="cpu")


def new_convnet(width: int, dim: int, generator: torch.Generator) -> ConvNet:
    """A freshly initialised :class:`ConvNet`, its weights drawn from ``generator``.

    The same distributions as PyTorch's defaults (Kaiming-uniform with ``a = sqrt(5)`` for
    conv and linear weights, a uniform bias in ``±1/sqrt(fan_in)``, BatchNorm at identity).
    """
    net = empty_convnet(width, dim)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
                if m.bias is not None:
                    bound = 1.0 / math.sqrt(m.weight[0].numel())
                    nn.init.uniform_(m.bias, -bound, bound, generator=generator)
            elif isinstance(m, nn.BatchNorm2d):
                m.reset_running_stats()
                m.reset_parameters()
    return net


@dataclass(frozen=True)
class AugmentPolicy:
    """How far :func:`augment` moves a training view (angles in radians, zoom as the share of
    the frame the crop covers: below 1 zooms in, above 1 out)."""

    max_angle: float
    zoom: tuple[float, float]
    shift: float  # of half the frame
    flip: bool
    contrast: tuple[float, float]
    brightness: float
    colour: float  # per-channel gain jitter; 0 keeps grey images grey
    noise: float
    padding: str  # grid_sample's padding mode


# product photos: colour, clutter, any viewpoint
PHOTO = AugmentPolicy(0.5, (0.7, 1.0), 0.2, True, (0.7, 1.3), 0.15, 0.15, 0.04, "reflection")
# small grey images (digits, garments, faces): rotations, shifts and zooms; no flip (a
# mirrored digit is another symbol), no colour; the border colour extends (black stays black)
GREY = AugmentPolicy(0.3, (0.75, 1.15), 0.15, False, (0.6, 1.4), 0.15, 0.0, 0.04, "border")
POLICIES = {"photo": PHOTO, "grey": GREY}


def policy_for(images: np.ndarray) -> str:
    """``"grey"`` when every pixel of ``images`` (uint8 ``(N, S, S, 3)``) has equal channels."""
    sample = images[: min(len(images), 512)]
    grey = bool(np.array_equal(sample[..., 0], sample[..., 1])) and bool(
        np.array_equal(sample[..., 0], sample[..., 2])
    )
    return "grey" if grey else "photo"


def augment(
    x: torch.Tensor, generator: torch.Generator, policy: AugmentPolicy = PHOTO
) -> torch.Tensor:
    """Random crop-resize (zoom), rotation, shift, flip, contrast / brightness / colour jitter
    and noise, as far as ``policy`` allows.

    ``x``: ``(B, 3, S, S)`` centred images; the output has the same shape. Every policy draws
    the same random numbers in the same order (a policy only scales or ignores them).
    """
    b, p = x.shape[0], policy

    def u(lo: float, hi: float, *shape: int) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand((b, *shape), generator=generator)

    angle = u(-p.max_angle, p.max_angle)
    scale = u(*p.zoom)
    flip = torch.where(torch.rand(b, generator=generator) < 0.5, -1.0, 1.0)
    if not p.flip:
        flip = torch.ones_like(flip)
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack(
        [
            torch.stack([cos * flip, -sin, u(-p.shift, p.shift)], 1),
            torch.stack([sin * flip, cos, u(-p.shift, p.shift)], 1),
        ],
        1,
    )  # (B, 2, 3)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, padding_mode=p.padding, align_corners=False)
    out = out * u(*p.contrast, 1, 1, 1) + u(-p.brightness, p.brightness, 1, 1, 1)
    out = out * u(1.0 - p.colour, 1.0 + p.colour, 3, 1, 1)  # colour cast
    noise = torch.randn(out.shape, generator=generator)
    if p.colour == 0.0:  # grey noise on grey images: one draw for all channels
        noise = noise[:, :1].expand_as(out)
    out = out + p.noise * noise
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
    policy: AugmentPolicy = PHOTO,
) -> TrainHistory:
    """Train ``net`` in place for ``steps`` batches of augmented positive pairs.

    One "epoch" of ``steps`` batches of :func:`mlsd.training.train_loop`: Adam (weight decay
    ``WEIGHT_DECAY``) with a cosine learning-rate decay to zero; the loss of every step is in
    ``TrainHistory.step_loss``. Pairs are drawn from the named stream ``contrastive/pairs`` of
    ``seed``, augmentations from the loop's seeded generator.
    """
    if len(images) != len(groups):
        raise ValueError(f"{len(images)} images but {len(groups)} group labels")
    if len(images) < 2:
        raise ValueError("contrastive training needs at least two images")
    if steps < 1:
        raise ValueError(f"steps must be >= 1, got {steps}")
    batch = min(batch_size, len(images))
    group_codes = torch.from_numpy(np.unique(groups, return_inverse=True)[1].astype(np.int64))

    def pairs(epoch: int, generator: torch.Generator) -> Iterator[Batch]:
        pair_rng = rng(seed, f"contrastive/pairs/{epoch}")
        for _ in range(steps):
            a, p = sample_pairs(groups, batch, pair_rng)
            x1 = augment(to_tensor(images[a]), generator, policy)
            x2 = augment(to_tensor(images[p]), generator, policy)
            yield x1, x2, group_codes[a]

    def loss(module: nn.Module, b: Batch) -> torch.Tensor:
        x1, x2, codes = b
        return info_nce(module(x1), module(x2), codes, temperature)

    def lr_at_step(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(step, steps) / steps))

    history = train_loop(
        net,
        pairs,
        loss,
        epochs=1,
        lr=lr,
        seed=seed_of(seed, "contrastive/loop"),
        weight_decay=WEIGHT_DECAY,
        lr_at_step=lr_at_step,
        num_threads=num_threads,
    )
    log.debug(
        "InfoNCE: %.4f after the first step, %.4f after the last",
        history.step_loss[0],
        history.step_loss[-1],
    )
    return history
