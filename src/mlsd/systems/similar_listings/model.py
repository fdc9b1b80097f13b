"""Step 4 for similar listings: the models side by side (book ch. 9, "Model development").

Every model answers one question, :meth:`ListingSimilarity.similarity`: how similar is each
listing to each query listing (``(Q, N)`` scores; the evaluation and the server keep the
query's region only). The line-up:

* :class:`RegionPopular`: the most clicked listings (the region is applied by the caller);
  the same list for every query.
* :class:`CoOccurrence`: item-to-item counts of listings clicked in one session (popularity
  breaks the ties, so a listing without co-clicks still gets a list).
* :class:`AttributeSimilarity`: the cosine of the listings' attribute vectors
  (:func:`~.features.attribute_matrix`: price, capacity, place, type, amenities).
* :class:`SkipGramEmbeddings`: the chapter's model, skip-gram with negative sampling over
  click sessions, trained by :func:`mlsd.training.train_loop` with sparse embedding tables.
  ``booked_global`` adds the booked listing as a global context of every click of its
  session; ``region_negatives`` adds that many negatives per pair drawn from the centre
  listing's region (hard negatives: the model must tell apart listings of one city, not just
  cities). Listings never clicked in training get the cold-start embedding,
  :func:`cold_start_vectors`: the mean embedding of their nearest clicked listings by region,
  type and price.
  A listing's vector is its input (centre) vector plus its output (context) vector, each
  normalised (``vectors_from="sum"``); on the small world that lifted next-click HR@10 from
  0.41 to 0.46 and the booked rank from 85.9 to 79.7 over the input vector alone
  (``vectors_from="centre"``, the chapter's choice).

Why PyTorch and not gensim: gensim's word2vec (4.4 works here) trains plain skip-gram fast,
but it has no hook for the chapter's two refinements (a context outside the window, negatives
from a chosen subset); a 60-line module with two sparse embedding tables, trained by the one
training loop, has both and runs at the small scale in seconds per epoch on one core.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Self

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from sklearn.base import BaseEstimator
from torch import nn

from mlsd.contracts import ModelCase
from mlsd.model_io import SavedAsData
from mlsd.rng import rng, seed_of
from mlsd.systems.similar_listings.features import Sessions, attribute_matrix, skipgram_pairs
from mlsd.training import TrainHistory, train_loop


def _l2(x: np.ndarray) -> np.ndarray:
    out: np.ndarray = (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)).astype(
        np.float32
    )
    return out


class ListingSimilarity(BaseEstimator, SavedAsData):  # type: ignore[misc]
    """What every model of the line-up answers."""

    def similarity(self, query: np.ndarray) -> np.ndarray:
        """``(Q, N)`` float scores of every listing for the query listings (higher: more
        similar)."""
        raise NotImplementedError

    def vectors(self) -> np.ndarray | None:
        """``(N, D)`` unit vectors whose inner products are :meth:`similarity`, or None."""
        return None


class RegionPopular(ListingSimilarity):
    """The most clicked listings; the caller restricts them to the query's region."""

    def __init__(self, booking_weight: float = 5.0) -> None:
        self.booking_weight = booking_weight

    def fit(self, sessions: Sessions, n_listings: int) -> Self:
        pop = np.bincount(sessions.items, minlength=n_listings).astype(np.float64)
        bk = sessions.booked[sessions.booked >= 0]
        pop += self.booking_weight * np.bincount(bk, minlength=n_listings)
        self.popularity_ = np.log1p(pop[:n_listings])
        return self

    def similarity(self, query: np.ndarray) -> np.ndarray:
        return np.broadcast_to(self.popularity_, (len(query), len(self.popularity_))).copy()


class CoOccurrence(ListingSimilarity):
    """Item-to-item: how many sessions clicked both listings; popularity breaks ties."""

    def __init__(self, tie_weight: float = 1e-3) -> None:
        self.tie_weight = tie_weight

    def fit(self, sessions: Sessions, n_listings: int) -> Self:
        sess_of = np.repeat(np.arange(len(sessions)), np.diff(sessions.offsets))
        x = sparse.csr_matrix(
            (np.ones(len(sess_of)), (sess_of, sessions.items)),
            shape=(max(len(sessions), 1), n_listings),
        )
        x.data[:] = 1.0
        x.sum_duplicates()
        x.data[:] = 1.0
        co = (x.T @ x).tocsr()
        co.setdiag(0.0)
        co.eliminate_zeros()
        self.co_ = co.astype(np.float32)
        self.popularity_ = np.log1p(np.asarray(x.sum(axis=0)).ravel())
        return self

    def similarity(self, query: np.ndarray) -> np.ndarray:
        dense = np.asarray(self.co_[np.asarray(query)].todense(), dtype=np.float64)
        out: np.ndarray = dense + self.tie_weight * self.popularity_[None, :]
        return out


class AttributeSimilarity(ListingSimilarity):
    """Content similarity: the cosine of the listings' attribute vectors."""

    def __init__(self) -> None:
        pass

    def fit(self, listings: pd.DataFrame) -> Self:
        self.vectors_ = attribute_matrix(listings)
        return self

    def vectors(self) -> np.ndarray:
        return self.vectors_

    def similarity(self, query: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.vectors_[np.asarray(query)] @ self.vectors_.T
        return out


class _SkipGram(nn.Module):
    def __init__(self, n: int, dim: int, generator: torch.Generator) -> None:
        super().__init__()
        self.centre = nn.Embedding(n, dim, sparse=True)
        self.context = nn.Embedding(n, dim, sparse=True)
        with torch.no_grad():
            self.centre.weight.uniform_(-0.5 / dim, 0.5 / dim, generator=generator)
            self.context.weight.zero_()

    def forward(self, centre: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, 1 + negatives)``: the context first, then the negatives."""
        return (self.centre(centre).unsqueeze(1) * self.context(others)).sum(-1)


def _sgns_loss(module: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
    centre, others = batch
    scores = module(centre, others)
    sign = torch.ones_like(scores)
    sign[:, 1:] = -1.0
    return -nn.functional.logsigmoid(sign * scores).sum(1).mean()


class SkipGramEmbeddings(ListingSimilarity):
    """Listing embeddings by skip-gram with negative sampling over click sessions."""

    def __init__(
        self,
        dim: int = 32,
        window: int = 2,
        negatives: int = 5,
        region_negatives: int = 0,
        booked_global: bool = False,
        epochs: int = 4,
        lr: float = 0.02,
        batch_size: int = 1024,
        cold_start_k: int = 5,
        vectors_from: str = "sum",
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.dim = dim
        self.window = window
        self.negatives = negatives
        self.region_negatives = region_negatives
        self.booked_global = booked_global
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.cold_start_k = cold_start_k
        self.vectors_from = vectors_from
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, sessions: Sessions, listings: pd.DataFrame) -> Self:
        """Train on ``sessions`` over the listings table ``listings`` (row = listing id; its
        ``region``, ``type`` and ``price`` are read for hard negatives and the cold start)."""
        n = len(listings)
        region = listings["region"].to_numpy(np.int64)
        pairs = skipgram_pairs(sessions, self.window, self.booked_global)
        self.n_pairs_ = len(pairs)
        gen = torch.Generator().manual_seed(seed_of(self.seed, "similar-listings/skipgram/init"))
        module = _SkipGram(n, self.dim, gen)
        counts = np.bincount(sessions.items, minlength=n).astype(np.float64)
        unigram = torch.as_tensor(np.power(counts + 1e-3, 0.75))
        order = np.argsort(region, kind="stable")
        starts = np.searchsorted(region[order], np.arange(region.max() + 1 if n else 1))
        sizes = np.bincount(region, minlength=len(starts))
        t_pairs = torch.as_tensor(pairs)
        t_region = torch.as_tensor(region.copy())
        t_order, t_starts = torch.as_tensor(order), torch.as_tensor(starts)
        t_sizes = torch.as_tensor(sizes)
        k_rand, k_reg, bs = self.negatives, self.region_negatives, self.batch_size

        def batches(epoch: int, g: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
            perm = torch.randperm(len(t_pairs), generator=g)
            for lo in range(0, len(perm), bs):
                p = t_pairs[perm[lo : lo + bs]]
                c, ctx = p[:, 0], p[:, 1]
                neg = torch.multinomial(unigram, len(c) * k_rand, True, generator=g)
                cols = [ctx[:, None], neg.view(len(c), k_rand)]
                if k_reg:
                    reg = t_region[c]
                    u = torch.rand(len(c), k_reg, generator=g, dtype=torch.float64)
                    off = (u * t_sizes[reg][:, None]).long()
                    cols.append(t_order[t_starts[reg][:, None] + off])
                yield c, torch.cat(cols, 1)

        self.history_: TrainHistory = train_loop(
            module,
            batches,
            _sgns_loss,
            epochs=self.epochs,
            lr=self.lr,
            seed=seed_of(self.seed, "similar-listings/skipgram/train"),
            num_threads=self.num_threads,
        )
        self.history_.step_loss = self.history_.step_loss[-1:]  # keep the saved model small
        vectors = module.centre.weight.detach().numpy().astype(np.float32)
        if self.vectors_from == "sum":  # input + output vectors (both halves of the pairs)
            vectors = _l2(vectors) + _l2(module.context.weight.detach().numpy())
        trained = counts > 0
        self.trained_ = trained
        self.vectors_ = cold_start_vectors(_l2(vectors), trained, listings, self.cold_start_k)
        return self

    def vectors(self) -> np.ndarray:
        return self.vectors_

    def similarity(self, query: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.vectors_[np.asarray(query)] @ self.vectors_.T
        return out


def cold_start_vectors(
    vectors: np.ndarray, trained: np.ndarray, listings: pd.DataFrame, k: int = 5
) -> np.ndarray:
    """``vectors`` with every untrained listing's row replaced by the (normalised) mean of the
    ``k`` trained listings of its region nearest to it by type (same type first) and log price
    (the chapter's cold start); untrained listings of a region without trained listings keep
    their row."""
    out = vectors.copy()
    cold = np.flatnonzero(~trained)
    if len(cold) == 0 or not trained.any():
        return out
    region = listings["region"].to_numpy()
    lp = np.log(listings["price"].to_numpy(np.float64))
    typ = listings["type"].astype(str).to_numpy()
    for i in cold:
        cand = np.flatnonzero(trained & (region == region[i]))
        if len(cand) == 0:
            continue
        dist = np.abs(lp[cand] - lp[i]) + 10.0 * (typ[cand] != typ[i])
        near = cand[np.argsort(dist, kind="stable")[:k]]
        out[i] = vectors[near].mean(0)
    return _l2(out)


def region_top_k(
    model: ListingSimilarity, query: np.ndarray, region: np.ndarray, k: int, chunk: int = 512
) -> np.ndarray:
    """``(Q, k)`` the ``k`` most similar listings of each query's region (itself excluded;
    -1 pads a region with fewer listings), ties broken by id."""
    q = np.asarray(query, dtype=np.int64)
    out = np.full((len(q), k), -1, np.int64)
    for lo in range(0, len(q), chunk):
        qq = q[lo : lo + chunk]
        s = model.similarity(qq).astype(np.float64)
        s[region[qq][:, None] != region[None, :]] = -np.inf
        s[np.arange(len(qq)), qq] = -np.inf
        kk = min(k, s.shape[1])
        top = np.argpartition(-s, kk - 1, axis=1)[:, :kk]
        ts = np.take_along_axis(s, top, 1)
        order = np.lexsort((top, -ts), axis=1)
        top = np.take_along_axis(top, order, 1)
        ts = np.take_along_axis(ts, order, 1)
        out[lo : lo + len(qq), :kk] = np.where(np.isfinite(ts), top, -1)
    return out


def rank_of(
    model: ListingSimilarity, query: np.ndarray, target: np.ndarray, region: np.ndarray
) -> np.ndarray:
    """1-based rank of ``target[i]`` among the listings of ``query[i]``'s region ordered by
    similarity to ``query[i]`` (itself excluded; ties count half)."""
    q, t = np.asarray(query, np.int64), np.asarray(target, np.int64)
    out = np.zeros(len(q), np.float64)
    for lo in range(0, len(q), 512):
        qq, tt = q[lo : lo + 512], t[lo : lo + 512]
        s = model.similarity(qq).astype(np.float64)
        same = region[qq][:, None] == region[None, :]
        same[np.arange(len(qq)), qq] = False
        st = s[np.arange(len(qq)), tt][:, None]
        better = ((s > st) & same).sum(1)
        ties = ((s == st) & same).sum(1) - 1
        out[lo : lo + len(qq)] = 1 + better + 0.5 * np.maximum(ties, 0)
    return out


class OracleSimilarity(ListingSimilarity):
    """The world's true similarity as a model (the oracle's line; never served)."""

    def __init__(self) -> None:
        pass

    def fit(self, world: Any) -> Self:
        self.world_ = world
        return self

    def similarity(self, query: np.ndarray) -> np.ndarray:
        out: np.ndarray = np.nan_to_num(self.world_.true_similarity(query), neginf=-1e9)
        return out


# ---- the contract ------------------------------------------------------------------------------
def _tiny_data() -> tuple[Sessions, pd.DataFrame]:
    r = rng(0, "similar-listings/contract/data")
    n = 40
    listings = pd.DataFrame(
        {
            "region": np.arange(n) % 2,
            "type": np.array(["entire_home", "private_room"])[(np.arange(n) // 2) % 2],
            "capacity": r.integers(1, 6, n),
            "price": r.uniform(40, 200, n).round(2),
            "amenities": r.integers(0, 256, n),
            "lat": r.normal(size=n),
            "lon": r.normal(size=n),
        }
    )
    lens = r.integers(2, 6, 60)
    items = np.concatenate([(r.integers(0, 15, k) * 2 + (s % 2)) for s, k in enumerate(lens)])
    booked = np.where(r.random(60) < 0.5, items[np.cumsum(lens) - 1], -1)
    sessions = Sessions(
        np.r_[0, np.cumsum(lens)].astype(np.int64),
        items.astype(np.int64),
        booked.astype(np.int64),
        np.zeros(60, np.int64),
    )
    return sessions, listings


def _case(name: str, make: Any, fit: Any) -> ModelCase:
    return ModelCase(
        name=name,
        kind="retriever",
        make=make,
        data=_tiny_data,
        fit=fit,
        output=lambda m, d: np.asarray(m.similarity(np.arange(len(d[1]))), dtype=np.float64),
        shape=lambda m, d: (len(d[1]), len(d[1])),
        save=lambda m, path: m.save(Path(path)),
        load=lambda path: ListingSimilarity.load(Path(path)),
        atol=1e-6,
    )


def contract_cases() -> list[ModelCase]:
    """The skip-gram (with both refinements) and the three baselines, on tiny seeded sessions."""
    return [
        _case(
            "similar_listings_skipgram",
            lambda seed: SkipGramEmbeddings(
                dim=8, epochs=1, batch_size=64, region_negatives=2, booked_global=True, seed=seed
            ),
            lambda m, d: m.fit(d[0], d[1]),
        ),
        _case(
            "similar_listings_region_popular",
            lambda seed: RegionPopular(),
            lambda m, d: m.fit(d[0], len(d[1])),
        ),
        _case(
            "similar_listings_cooccurrence",
            lambda seed: CoOccurrence(),
            lambda m, d: m.fit(d[0], len(d[1])),
        ),
        _case(
            "similar_listings_attributes",
            lambda seed: AttributeSimilarity(),
            lambda m, d: m.fit(d[1]),
        ),
    ]


__all__ = [
    "AttributeSimilarity",
    "CoOccurrence",
    "ListingSimilarity",
    "OracleSimilarity",
    "RegionPopular",
    "SkipGramEmbeddings",
    "cold_start_vectors",
    "contract_cases",
    "rank_of",
    "region_top_k",
]
