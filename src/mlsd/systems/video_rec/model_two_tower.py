"""Candidate generation, learned: the two-tower network (book ch. 6; Yi et al., RecSys 2019).

The user tower encodes the user id, the pooled watch history (video-id embeddings and title
embeddings of the last watched videos) and demographics; the video tower encodes the video id and
content (category, the all-MiniLM-L6-v2 title embedding, duration). Both end in unit vectors, so
retrieval is a maximum-inner-product search that FAISS answers. Training uses in-batch negatives
with the log-frequency (logQ) correction: popular videos appear as negatives more often than
uniform sampling would, so their logit is lowered by ``log q(v)`` during training. Id dropout
teaches both towers to work without ids, which is how new users and new videos are served.

Training runs through :func:`mlsd.training.train_loop` (the in-batch softmax is the batch loss);
the weights are initialised from a named generator, so no global torch seed is touched.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Self, cast

import numpy as np
import pandas as pd
import torch
from sklearn.base import BaseEstimator
from torch import nn
from torch.nn import functional as F

from mlsd.model_io import SavedAsData
from mlsd.rng import seed_of, torch_generator
from mlsd.systems.video_rec.features import Catalogue, Demographics, UserSide
from mlsd.systems.video_rec.world_entities import AGE_BUCKETS, COUNTRIES, LANGUAGES
from mlsd.training import Batch, train_loop

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

    def rows(self, idx: np.ndarray) -> TowerInputs:
        """The inputs of rows ``idx`` (the user ids copied, so they can be dropped out)."""
        return TowerInputs(
            self.user[idx].copy(),
            self.history[idx],
            self.age[idx],
            self.country[idx],
            self.language[idx],
        )


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


@torch.no_grad()
def _init_weights(net: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default initialisation (normal embeddings, Kaiming-uniform linear layers),
    drawn from ``generator`` instead of the global RNG."""
    for m in net.modules():
        if isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, generator=generator)
        elif isinstance(m, nn.Linear):
            nn.init.kaiming_uniform_(m.weight, a=math.sqrt(5), generator=generator)
            bound = 1.0 / math.sqrt(m.in_features) if m.in_features > 0 else 0.0
            nn.init.uniform_(m.bias, -bound, bound, generator=generator)


class TwoTowerRetriever(SavedAsData, BaseEstimator):  # type: ignore[misc]
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
        num_threads: int = 1,
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
        self.num_threads = num_threads  # small batches: one thread avoids core contention
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
        self.n_users_ = n_users
        self.n_videos_ = len(cat.videos)
        self.n_categories_ = len(cat.categories)
        with torch.device("meta"):  # no weights drawn from the global RNG...
            net = _Net(n_users, self.n_videos_, self.n_categories_, self.dim, self.out_dim)
        net = net.to_empty(device="cpu")
        _init_weights(net, torch_generator(self.seed, "video-rec/two-tower/init"))  # ...but here
        self.net_ = net
        freq = np.bincount(pos_video, minlength=self.n_videos_).astype(np.float64)
        log_q = np.log((freq + 1.0) / (freq + 1.0).sum())
        n, size, drop = len(pos_video), self.batch_size, self.id_dropout

        def batches(epoch: int, generator: torch.Generator) -> Iterator[Batch]:
            perm = torch.randperm(n, generator=generator).numpy()
            for start in range(0, n - 1, size):
                b = perm[start : start + size]
                if len(b) < 2:
                    continue
                xb = x.rows(b)
                xb.user[(torch.rand(len(b), generator=generator) < drop).numpy()] = 0
                video, *content = self._video_tensors(cat, pos_video[b])
                keep = torch.rand(len(b), generator=generator) >= drop
                yield (
                    *self._user_tensors(cat, xb),
                    video * keep,
                    *content,
                    torch.as_tensor(log_q[pos_video[b]], dtype=torch.float32),
                    torch.as_tensor(pos_video[b]),
                )

        t0 = time.perf_counter()
        history = train_loop(
            net,
            batches,
            self._in_batch_softmax,
            epochs=self.epochs,
            lr=self.lr,
            seed=seed_of(self.seed, "video-rec/two-tower/train"),
            num_threads=self.num_threads,
        )
        self.train_seconds_ = time.perf_counter() - t0
        self.losses_ = list(history.train_loss)
        log.info("two-tower: %d pairs, losses %s", n, [round(v, 3) for v in self.losses_])
        return self

    def _in_batch_softmax(self, module: nn.Module, batch: Batch) -> torch.Tensor:
        """Softmax over the batch's videos: each user's clicked video against the others'
        (logQ-corrected; a video clicked twice in the batch is not its own negative)."""
        net = cast(_Net, module)
        u = net.user_tower(*batch[:5])
        v = net.video_tower(*batch[5:9])
        log_q, pos = batch[9], batch[10]
        logits = u @ v.T / self.temperature  # (B, B)
        if self.logq:
            logits = logits - log_q
        same = pos[:, None] == pos[None, :]
        logits = logits.masked_fill(same & ~torch.eye(len(pos), dtype=torch.bool), -1e9)
        return F.cross_entropy(logits, torch.arange(len(pos)))

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

    # ---- artifacts -------------------------------------------------------------------
    def _empty_module(self, name: str) -> nn.Module:
        """For :mod:`mlsd.model_io` (``save`` / ``load``: the weights as a state dict, the sizes
        and parameters as JSON): the network, built on the meta device, to load them into."""
        if name != "net_":
            return cast(nn.Module, super()._empty_module(name))
        with torch.device("meta"):
            return _Net(self.n_users_, self.n_videos_, self.n_categories_, self.dim, self.out_dim)


# ---- training data -----------------------------------------------------------------------
def tower_training_pairs(
    us: UserSide, users: pd.DataFrame, log_df: pd.DataFrame, hist_len: int
) -> tuple[TowerInputs, np.ndarray]:
    """One pair per click: the user's inputs as of the click's day, and the clicked video."""
    c = log_df["click"].to_numpy().astype(bool)
    u = log_df["user_id"].to_numpy(np.int64)[c]
    d = log_df["day"].to_numpy(np.int64)[c]
    demo = Demographics.of(users, u) if "age_bucket" in users else None
    n = len(u)
    x = TowerInputs(
        user=u + 1,
        history=us.history(u, d, hist_len),
        age=vocab_index(demo.age_bucket, AGE_BUCKETS) if demo else np.zeros(n, np.int64),
        country=vocab_index(demo.country, COUNTRIES) if demo else np.zeros(n, np.int64),
        language=vocab_index(demo.language, LANGUAGES) if demo else np.zeros(n, np.int64),
    )
    return x, log_df["video_id"].to_numpy(np.int64)[c]
