"""The chapter's model: listing embeddings by skip-gram with negative sampling (book ch. 9).

Two embedding tables (a listing as the centre of a pair, a listing as its context), trained by
:func:`mlsd.training.train_loop` with sparse tables on the ``(centre, context)`` pairs of
:func:`.features.skipgram_pairs`: the clicks within ``window`` positions of each other and,
with ``booked_global``, every click of a booking session with the booked listing (the chapter's
global context). Each pair is contrasted with ``negatives`` listings drawn from all listings
(by clicks ``^ unigram_power``) and ``region_negatives`` drawn uniformly from the centre
listing's region (the chapter's hard negatives: the model must tell apart listings of one
city, not just cities).

How two listings are compared (``scoring``):

* ``"cosine"``: the cosine of the listings' vectors (input + output, each normalised), the
  usual word2vec similarity; symmetric; it forgets how often a listing is clicked or booked.
* ``"dot"``: the model's own score, the centre (input) vector of the viewed listing times the
  context (output) vector of the candidate, plus the candidate's output bias with
  ``output_bias``. With negatives drawn uniformly from the region, the minimum of the loss is
  ``log P(candidate | viewed) + const`` within the region: what co-occurrence counts estimate,
  smoothed through a low-rank model. It is asymmetric: the index holds the context vectors (and
  the bias as one more dimension, and one that gives every item vector the same norm), the
  query is the centre vector (and a 1, and a 0).

On the small world (validation days, see :mod:`.model_tuning`) the dot score with region
negatives and the bias is what beats co-occurrence on the booked-listing rank and the next
click; with unigram negatives (a PMI) or the cosine it does not. Listings never clicked in
training get the cold-start vectors, :func:`cold_start_vectors`.

Why PyTorch and not gensim: gensim's word2vec (4.4 works here) trains plain skip-gram fast,
but it has no hook for the chapter's two refinements (a context outside the window, negatives
from a chosen subset) nor for an output bias; :mod:`.model_tuning` measures both on plain skip-gram.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Self

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from torch import nn

from mlsd.rng import seed_of
from mlsd.systems.similar_listings.features import Sessions, skipgram_pairs
from mlsd.systems.similar_listings.model_similarity import ListingSimilarity, unit_rows
from mlsd.training import BatchSource, TrainHistory, train_loop

SCORINGS = ("cosine", "dot")


class _SkipGram(nn.Module):
    def __init__(self, n: int, dim: int, bias: bool, generator: torch.Generator) -> None:
        super().__init__()
        self.centre = nn.Embedding(n, dim, sparse=True)
        self.context = nn.Embedding(n, dim, sparse=True)
        self.bias = nn.Embedding(n, 1, sparse=True) if bias else None
        with torch.no_grad():
            self.centre.weight.uniform_(-0.5 / dim, 0.5 / dim, generator=generator)
            self.context.weight.zero_()
            if self.bias is not None:
                self.bias.weight.zero_()

    def forward(self, centre: torch.Tensor, others: torch.Tensor) -> torch.Tensor:
        """Scores ``(B, 1 + negatives)``: the context first, then the negatives."""
        out = (self.centre(centre).unsqueeze(1) * self.context(others)).sum(-1)
        if self.bias is not None:
            out = out + self.bias(others).squeeze(-1)
        return out


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
        booked_weight: int = 1,
        epochs: int = 4,
        lr: float = 0.02,
        batch_size: int = 1024,
        cold_start_k: int = 5,
        scoring: str = "cosine",
        output_bias: bool = False,
        unigram_power: float = 0.75,
        seed: int = 0,
        num_threads: int = 1,
    ) -> None:
        self.dim = dim
        self.window = window
        self.negatives = negatives
        self.region_negatives = region_negatives
        self.booked_global = booked_global
        self.booked_weight = booked_weight
        self.epochs = epochs
        self.lr = lr
        self.batch_size = batch_size
        self.cold_start_k = cold_start_k
        self.scoring = scoring
        self.output_bias = output_bias
        self.unigram_power = unigram_power
        self.seed = seed
        self.num_threads = num_threads

    def fit(self, sessions: Sessions, listings: pd.DataFrame) -> Self:
        """Train on ``sessions`` over the listings table ``listings`` (row = listing id; its
        ``region``, ``type`` and ``price`` are read for hard negatives and the cold start)."""
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}")
        if self.negatives + self.region_negatives < 1:
            raise ValueError("need at least one negative per pair")
        n = len(listings)
        region = listings["region"].to_numpy(np.int64)
        pairs = skipgram_pairs(sessions, self.window, self.booked_global, self.booked_weight)
        self.n_pairs_ = len(pairs)
        gen = torch.Generator().manual_seed(seed_of(self.seed, "similar-listings/skipgram/init"))
        module = _SkipGram(n, self.dim, self.output_bias, gen)
        counts = np.bincount(sessions.items, minlength=n).astype(np.float64)
        self.history_: TrainHistory = train_loop(
            module,
            self._batches(pairs, counts, region),
            _sgns_loss,
            epochs=self.epochs,
            lr=self.lr,
            seed=seed_of(self.seed, "similar-listings/skipgram/train"),
            num_threads=self.num_threads,
        )
        self.history_.step_loss = self.history_.step_loss[-1:]  # keep the saved model small
        centre = module.centre.weight.detach().numpy().astype(np.float32)
        context = module.context.weight.detach().numpy().astype(np.float32)
        trained = counts > 0
        self.trained_ = trained
        k = self.cold_start_k
        if self.scoring == "cosine":
            vectors = unit_rows(unit_rows(centre) + unit_rows(context))
            self.vectors_ = cold_start_vectors(vectors, trained, listings, k)
            self.query_vectors_ = self.vectors_
        else:
            bias = (
                module.bias.weight.detach().numpy().astype(np.float32)
                if module.bias is not None
                else np.zeros((n, 1), np.float32)
            )
            item = np.concatenate([context, bias], 1)
            query = np.concatenate([centre, np.ones((n, 1), np.float32)], 1)
            self.vectors_ = cold_start_vectors(item, trained, listings, k, normalise=False)
            self.query_vectors_ = cold_start_vectors(query, trained, listings, k, normalise=False)
        return self

    def _batches(self, pairs: np.ndarray, counts: np.ndarray, region: np.ndarray) -> BatchSource:
        n = len(region)
        unigram = torch.as_tensor(np.power(counts + 1e-3, self.unigram_power))
        order = np.argsort(region, kind="stable")
        starts = np.searchsorted(region[order], np.arange(region.max() + 1 if n else 1))
        t_pairs = torch.as_tensor(pairs)
        t_region = torch.as_tensor(region.copy())
        t_order, t_starts = torch.as_tensor(order), torch.as_tensor(starts)
        t_sizes = torch.as_tensor(np.bincount(region, minlength=len(starts)))
        k_rand, k_reg, bs = self.negatives, self.region_negatives, self.batch_size

        def batches(epoch: int, g: torch.Generator) -> Iterator[tuple[torch.Tensor, ...]]:
            perm = torch.randperm(len(t_pairs), generator=g)
            for lo in range(0, len(perm), bs):
                p = t_pairs[perm[lo : lo + bs]]
                c, ctx = p[:, 0], p[:, 1]
                cols = [ctx[:, None]]
                if k_rand:
                    neg = torch.multinomial(unigram, len(c) * k_rand, True, generator=g)
                    cols.append(neg.view(len(c), k_rand))
                if k_reg:
                    reg = t_region[c]
                    u = torch.rand(len(c), k_reg, generator=g, dtype=torch.float64)
                    off = (u * t_sizes[reg][:, None]).long()
                    cols.append(t_order[t_starts[reg][:, None] + off])
                yield c, torch.cat(cols, 1)

        return batches

    @property
    def n_listings_(self) -> int:
        return len(self.vectors_)

    def with_listings(self, listings: pd.DataFrame) -> SkipGramEmbeddings:
        """A copy over the listings table ``listings`` (the one trained on, grown by new
        listings, or cut): new listings get the cold-start vectors, nothing is retrained."""
        n, m = self.n_listings_, len(listings)
        out = clone(self)
        out.history_, out.n_pairs_ = self.history_, self.n_pairs_
        trained = np.zeros(m, bool)
        trained[: min(n, m)] = self.trained_[:m]
        out.trained_ = trained
        normalise = self.scoring == "cosine"

        def grow(x: np.ndarray) -> np.ndarray:
            rows = np.zeros((m, x.shape[1]), np.float32)
            rows[: min(n, m)] = x[:m]
            return cold_start_vectors(rows, trained, listings, self.cold_start_k, normalise)

        out.vectors_ = grow(self.vectors_)
        out.query_vectors_ = out.vectors_ if normalise else grow(self.query_vectors_)
        return out

    def vectors(self) -> np.ndarray:
        """The vectors to index. For the dot score, one more dimension brings every item
        vector to the same norm (``sqrt(M^2 - |v|^2)``, the query's is 0): inner products are
        unchanged, and HNSW, which finds the largest inner products poorly among vectors of
        different norms, searches them as well as cosines."""
        if self.scoring == "cosine":
            return self.vectors_
        sq = np.einsum("ij,ij->i", self.vectors_, self.vectors_)
        pad = np.sqrt(np.maximum(sq.max(initial=0.0) - sq, 0.0))[:, None]
        return np.concatenate([self.vectors_, pad], 1).astype(np.float32)

    def query_vectors(self) -> np.ndarray:
        if self.scoring == "cosine":
            return self.query_vectors_
        zero = np.zeros((len(self.query_vectors_), 1), np.float32)
        return np.concatenate([self.query_vectors_, zero], 1)

    def similarity(self, query: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.query_vectors_[np.asarray(query)] @ self.vectors_.T
        return out


def cold_start_vectors(
    vectors: np.ndarray,
    trained: np.ndarray,
    listings: pd.DataFrame,
    k: int = 5,
    normalise: bool = True,
) -> np.ndarray:
    """``vectors`` with every untrained listing's row replaced by the mean of the ``k`` trained
    listings of its region nearest to it by type (same type first) and log price (the chapter's
    cold start), normalised with ``normalise``; untrained listings of a region without trained
    listings keep their row."""
    out = vectors.copy()
    cold = np.flatnonzero(~trained)
    if len(cold) and trained.any():
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
    return unit_rows(out) if normalise else out.astype(np.float32)


__all__ = ["SCORINGS", "SkipGramEmbeddings", "cold_start_vectors"]
