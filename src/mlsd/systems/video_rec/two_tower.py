"""Candidate generation, learned: the two-tower network (book ch. 6; Yi et al., RecSys 2019).

The user tower encodes the user id, the pooled watch history (video-id embeddings and title
embeddings of the last watched videos) and demographics; the video tower encodes the video id and
content (category, the all-MiniLM-L6-v2 title embedding, duration). Both end in unit vectors, so
retrieval is a maximum-inner-product search that FAISS answers. Training uses in-batch negatives
with the log-frequency (logQ) correction: popular videos appear as negatives more often than
uniform sampling would, so their logit is lowered by ``log q(v)`` during training. Id dropout
teaches both towers to work without ids, which is how new users and new videos are served.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Self

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from mlsd.systems.video_rec.features import Catalogue
from mlsd.systems.video_rec.world_entities import AGE_BUCKETS, COUNTRIES, LANGUAGES

log = logging.getLogger(__name__)


def vocab_index(values: np.ndarray, vocab: tuple[str, ...]) -> np.ndarray:
    """Index of each value in ``vocab`` plus one; 0 for unknown or missing values."""
    lookup = {v: i + 1 for i, v in enumerate(vocab)}
    return np.asarray([lookup.get(str(x), 0) for x in values], dtype=np.int64)


@dataclass
class TowerInputs:
    """A batch of user-tower inputs: ids (0 = unknown), history (-1 pad), demographics."""

    user: np.ndarray  # (n,) id + 1, 0 unknown
    history: np.ndarray  # (n, H) video ids, -1 = padding
    age: np.ndarray
    country: np.ndarray
    language: np.ndarray


class _Net(nn.Module):
    def __init__(self, n_users: int, n_videos: int, n_cat: int, dim: int, out: int) -> None:
        super().__init__()
        self.user_id = nn.Embedding(n_users + 1, dim)
        self.video_id = nn.Embedding(n_videos + 1, dim)  # shared by the history pooling
        self.age = nn.Embedding(len(AGE_BUCKETS) + 1, 8)
        self.country = nn.Embedding(len(COUNTRIES) + 1, 8)
        self.language = nn.Embedding(len(LANGUAGES) + 1, 8)
        self.category = nn.Embedding(n_cat + 1, 8)
        self.title = nn.Linear(384, dim)
        self.user_mlp = nn.Sequential(nn.Linear(3 * dim + 24, 64), nn.ReLU(), nn.Linear(64, out))
        self.video_mlp = nn.Sequential(nn.Linear(2 * dim + 9, 64), nn.ReLU(), nn.Linear(64, out))

    def user_tower(
        self,
        user: torch.Tensor,
        hist_ids: torch.Tensor,
        hist_title: torch.Tensor,
        mask: torch.Tensor,
        demo: torch.Tensor,
    ) -> torch.Tensor:
        w = mask / mask.sum(1, keepdim=True).clamp(min=1.0)  # (B, H) mean pooling weights
        pooled_id = torch.einsum("bh,bhd->bd", w, self.video_id(hist_ids))  # (B, dim)
        pooled_title = torch.einsum("bh,bhd->bd", w, self.title(hist_title))  # (B, dim)
        parts = [
            self.user_id(user),
            pooled_id,
            pooled_title,
            self.age(demo[:, 0]),
            self.country(demo[:, 1]),
            self.language(demo[:, 2]),
        ]
        return F.normalize(self.user_mlp(torch.cat(parts, dim=1)), dim=1)  # (B, out)

    def video_tower(
        self, video: torch.Tensor, category: torch.Tensor, title: torch.Tensor, dur: torch.Tensor
    ) -> torch.Tensor:
        parts = [self.video_id(video), self.title(title), self.category(category), dur[:, None]]
        return F.normalize(self.video_mlp(torch.cat(parts, dim=1)), dim=1)  # (B, out)


class TwoTowerRetriever:
    """Fit the two towers on (user, clicked video) pairs; embed users and videos for ANN search."""

    def __init__(
        self,
        dim: int = 32,
        out_dim: int = 32,
        epochs: int = 6,
        batch_size: int = 256,
        lr: float = 3e-3,
        temperature: float = 0.07,
        logq: bool = True,
        id_dropout: float = 0.25,
        seed: int = 0,
    ) -> None:
        self.dim = dim
        self.out_dim = out_dim
        self.epochs = epochs
        self.batch_size = batch_size
        self.lr = lr
        self.temperature = temperature
        self.logq = logq
        self.id_dropout = id_dropout
        self.seed = seed

    # ---- inputs ----------------------------------------------------------------------
    def _video_tensors(self, cat: Catalogue, ids: np.ndarray) -> tuple[torch.Tensor, ...]:
        known = np.where(ids < self.n_videos_, ids + 1, 0)
        return (
            torch.as_tensor(known),
            torch.as_tensor(cat.category_idx[ids] + 1).clamp(min=0),
            torch.as_tensor(cat.title_emb[ids], dtype=torch.float32),
            torch.as_tensor(np.log(cat.duration[ids]), dtype=torch.float32),
        )

    def _user_tensors(self, cat: Catalogue, x: TowerInputs) -> tuple[torch.Tensor, ...]:
        h = x.history
        mask = h >= 0
        safe = np.where(mask, h, 0)
        known_hist = np.where(mask & (safe < self.n_videos_), safe + 1, 0)
        user = np.where(x.user <= self.n_users_, x.user, 0)
        return (
            torch.as_tensor(user),
            torch.as_tensor(known_hist),
            torch.as_tensor(cat.title_emb[safe] * mask[..., None], dtype=torch.float32),
            torch.as_tensor(mask, dtype=torch.float32),
            torch.as_tensor(np.stack([x.age, x.country, x.language], axis=1)),
        )

    # ---- training --------------------------------------------------------------------
    def fit(self, cat: Catalogue, x: TowerInputs, pos_video: np.ndarray, n_users: int) -> Self:
        """Train on positive pairs ``(x[i], pos_video[i])`` with in-batch negatives."""
        rng = np.random.default_rng(self.seed)
        torch.manual_seed(self.seed)
        self.n_users_ = n_users
        self.n_videos_ = len(cat.videos)
        self.net_ = _Net(n_users, self.n_videos_, len(cat.categories), self.dim, self.out_dim)
        freq = np.bincount(pos_video, minlength=self.n_videos_).astype(np.float64)
        log_q = np.log((freq + 1.0) / (freq + 1.0).sum())
        opt = torch.optim.Adam(self.net_.parameters(), lr=self.lr)
        n = len(pos_video)
        self.losses_: list[float] = []
        t0 = time.perf_counter()
        for _epoch in range(self.epochs):
            perm = rng.permutation(n)
            total = 0.0
            for start in range(0, n - 1, self.batch_size):
                b = perm[start : start + self.batch_size]
                if len(b) < 2:
                    continue
                xb = TowerInputs(
                    x.user[b].copy(), x.history[b], x.age[b], x.country[b], x.language[b]
                )
                xb.user[rng.random(len(b)) < self.id_dropout] = 0
                u = self.net_.user_tower(*self._user_tensors(cat, xb))
                vt = list(self._video_tensors(cat, pos_video[b]))
                vt[0] = vt[0] * torch.as_tensor(rng.random(len(b)) >= self.id_dropout)
                v = self.net_.video_tower(*vt)
                logits = u @ v.T / self.temperature  # (B, B)
                if self.logq:
                    logits = logits - torch.as_tensor(log_q[pos_video[b]], dtype=torch.float32)
                same = torch.as_tensor(pos_video[b][:, None] == pos_video[b][None, :])
                logits = logits.masked_fill(same & ~torch.eye(len(b), dtype=torch.bool), -1e9)
                loss = F.cross_entropy(logits, torch.arange(len(b)))
                opt.zero_grad()
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(b)
            self.losses_.append(total / max(n, 1))
        self.train_seconds_ = time.perf_counter() - t0
        log.info("two-tower: %d pairs, losses %s", n, [round(x, 3) for x in self.losses_])
        return self

    # ---- inference -------------------------------------------------------------------
    @torch.no_grad()
    def video_embeddings(self, cat: Catalogue, ids: np.ndarray | None = None) -> np.ndarray:
        ids = np.arange(len(cat.videos)) if ids is None else np.asarray(ids)
        self.net_.eval()
        out = [
            self.net_.video_tower(*self._video_tensors(cat, ids[s : s + 8192])).numpy()
            for s in range(0, len(ids), 8192)
        ]
        return np.concatenate(out).astype(np.float32) if out else np.zeros((0, self.out_dim))

    @torch.no_grad()
    def user_embeddings(self, cat: Catalogue, x: TowerInputs) -> np.ndarray:
        self.net_.eval()
        return np.asarray(self.net_.user_tower(*self._user_tensors(cat, x)).numpy(), np.float32)
