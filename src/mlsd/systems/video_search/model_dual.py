"""The visual half: a text-video dual encoder, trained contrastively on the logs' (query,
clicked video) pairs.

* **Query tower**: the query's sentence embedding (MiniLM, :mod:`mlsd.text`) through an MLP;
* **video tower**: a small CNN over each frame, **temporal pooling** (the mean over the
  frames), a linear projection;
* both L2-normalised; the loss is the symmetric InfoNCE over the batch (every other pair of
  the batch is a negative), temperature ``temperature``.

Trained with :func:`mlsd.training.train_loop` (the one PyTorch loop), on the CPU.
"""

from __future__ import annotations

from typing import Any, Self

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import BaseEstimator
from torch import nn

from mlsd.model_io import SavedAsData
from mlsd.rng import seed_of, torch_generator
from mlsd.training import TrainHistory, shuffled_batches, torch_threads, train_loop


class DualNet(nn.Module):
    """Query tower and video tower into one ``dim``-d space."""

    def __init__(self, text_dim: int, hidden: int, width: int, dim: int) -> None:
        super().__init__()
        self.query = nn.Sequential(  # (B, text_dim) -> (B, dim)
            nn.Linear(text_dim, hidden), nn.ReLU(), nn.Linear(hidden, dim)
        )
        self.frame = nn.Sequential(  # (B*F, 3, S, S) -> (B*F, 2*width)
            nn.Conv2d(3, width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.video = nn.Linear(2 * width, dim)  # (B, 2*width) -> (B, dim)

    def queries(self, q: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.query(q), dim=1)  # (B, dim)

    def videos(self, frames: torch.Tensor) -> torch.Tensor:
        b, f = frames.shape[:2]
        h = self.frame(frames.flatten(0, 1)).view(b, f, -1).mean(dim=1)  # temporal pooling
        return F.normalize(self.video(h), dim=1)  # (B, dim)


def info_nce(q: torch.Tensor, v: torch.Tensor, temperature: float) -> torch.Tensor:
    logits = q @ v.T / temperature  # (B, B): the diagonal holds the logged pairs
    target = torch.arange(len(q))
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


class DualEncoder(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """Query text embeddings and video frames into one space (see the module docstring)."""

    def __init__(
        self,
        dim: int = 64,
        width: int = 16,
        hidden: int = 128,
        epochs: int = 6,
        batch_size: int = 256,
        lr: float = 3e-3,
        temperature: float = 0.07,
        num_threads: int = 1,
        random_state: int = 0,
    ) -> None:
        self.dim = dim
        self.width = width
        self.hidden = hidden
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.num_threads = num_threads
        self.random_state = random_state

    def fit(self, queries: np.ndarray, frames: np.ndarray, video_rows: np.ndarray) -> Self:
        """``queries`` ``(N, text_dim)``, ``frames`` ``(M, F, 3, S, S)``, ``video_rows`` ``(N,)``:
        the row of ``frames`` each query's clicked video is."""
        q = torch.from_numpy(np.ascontiguousarray(queries, np.float32))
        fr = torch.from_numpy(np.ascontiguousarray(frames, np.float32))
        rows = torch.from_numpy(np.array(video_rows, np.int64))
        if len(q) != len(rows) or (len(rows) and int(rows.max()) >= len(fr)):
            raise ValueError(f"{len(q)} queries, {len(rows)} video rows, {len(fr)} videos")
        self.text_dim_ = int(q.shape[1])
        gen = torch_generator(self.random_state, "video-search/dual-init")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen)))
            self.net_ = DualNet(self.text_dim_, self.hidden, self.width, self.dim)

        def loss(m: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
            net: Any = m
            return info_nce(net.queries(batch[0]), net.videos(fr[batch[1]]), self.temperature)

        history: TrainHistory = train_loop(
            self.net_,
            shuffled_batches([q, rows], self.batch_size),
            loss,
            epochs=self.epochs,
            lr=self.lr,
            seed=seed_of(self.random_state, "video-search/dual-train"),
            num_threads=self.num_threads,
        )
        self.train_loss_ = [float(x) for x in history.train_loss]
        return self

    def encode_queries(self, queries: np.ndarray) -> np.ndarray:
        with torch_threads(self.num_threads), torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(queries, np.float32))
            return self.net_.queries(x).numpy().astype(np.float32)

    def encode_videos(self, frames: np.ndarray, batch: int = 2048) -> np.ndarray:
        out = []
        with torch_threads(self.num_threads), torch.inference_mode():
            for s in range(0, len(frames), batch):
                x = torch.from_numpy(np.ascontiguousarray(frames[s : s + batch], np.float32))
                out.append(self.net_.videos(x).numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.concatenate(out).astype(np.float32)

    def _empty_module(self, name: str) -> Any:
        if name != "net_":
            return super()._empty_module(name)
        return DualNet(self.text_dim_, self.hidden, self.width, self.dim)
