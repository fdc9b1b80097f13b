"""Step 4 for similar listings, the line-up fitted: the three baselines and the skip-gram with
the chapter's refinements added one at a time (the models themselves are in ``model.py``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mlsd.report import Blueprint
from mlsd.systems.similar_listings.features import Sessions
from mlsd.systems.similar_listings.model import (
    AttributeSimilarity,
    CoOccurrence,
    ListingSimilarity,
    RegionPopular,
    SkipGramEmbeddings,
)

SKIPGRAM = "skipgram"
SKIPGRAM_BOOKED = "skipgram_booked"
SKIPGRAM_FULL = "skipgram_booked_region_negatives"
BASELINES = ("region_popular", "cooccurrence", "attributes")


@dataclass(frozen=True)
class SkipGramConfig:
    """The skip-gram's settings at one scale (the refinements are switched per model)."""

    dim: int = 32
    window: int = 4
    negatives: int = 5
    region_negatives: int = 3
    epochs: int = 5
    lr: float = 0.02
    batch_size: int = 1024


@dataclass(frozen=True)
class ModelsResult:
    """Step 4: every model of the line-up, fitted on the training sessions, and its cost."""

    models: dict[str, ListingSimilarity]
    train_seconds: dict[str, float]
    train_pairs: dict[str, int]

    def metrics(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, model in self.models.items():
            fig: dict[str, Any] = {"train_seconds": round(self.train_seconds[name], 3)}
            if name in self.train_pairs:
                fig["train_pairs"] = self.train_pairs[name]
            if isinstance(model, SkipGramEmbeddings):
                fig["train_loss"] = [round(x, 4) for x in model.history_.train_loss]
                fig["epochs"] = model.history_.epochs_run
            out[name] = fig
        return {"models": out}


def fit_models(
    train: Sessions,
    listings: pd.DataFrame,
    cfg: SkipGramConfig,
    seed: int,
    progress: Callable[[str, float, float], None] | None = None,
) -> ModelsResult:
    """The three baselines and the skip-gram with its refinements added one at a time."""
    n = len(listings)
    variants = {
        SKIPGRAM: dict(booked_global=False, region_negatives=0),
        SKIPGRAM_BOOKED: dict(booked_global=True, region_negatives=0),
        SKIPGRAM_FULL: dict(booked_global=True, region_negatives=cfg.region_negatives),
    }
    makers: dict[str, Callable[[], ListingSimilarity]] = {
        "region_popular": lambda: RegionPopular().fit(train, n),
        "cooccurrence": lambda: CoOccurrence().fit(train, n),
        "attributes": lambda: AttributeSimilarity().fit(listings),
    }
    for name, flags in variants.items():

        def make(flags: dict[str, Any] = flags) -> ListingSimilarity:
            return SkipGramEmbeddings(
                dim=cfg.dim,
                window=cfg.window,
                negatives=cfg.negatives,
                epochs=cfg.epochs,
                lr=cfg.lr,
                batch_size=cfg.batch_size,
                seed=seed,
                **flags,
            ).fit(train, listings)

        makers[name] = make
    return _fit_all(makers, progress)


def report_models(bp: Blueprint, result: ModelsResult, cfg: SkipGramConfig) -> None:
    bp.section("Model development")
    bp.text(
        "Every model scores how similar each listing is to a query listing; the region filter "
        "is applied on top. Baselines: the region's most clicked listings, item-to-item "
        "co-occurrence in sessions, and the cosine of attribute vectors. The chapter's model "
        f"is skip-gram with negative sampling ({cfg.dim} dimensions, window {cfg.window}, "
        f"{cfg.negatives} random negatives, {cfg.epochs} epochs of Adam on sparse tables), "
        "trained three times to show each refinement: plain; with the booked listing as a "
        "global context; and with, in addition, "
        f"{cfg.region_negatives} hard negatives per pair from the centre listing's region. "
        "A listing's vector is its input plus its output embedding, each normalised. "
        "Listings without training clicks get the mean embedding of their 5 nearest clicked "
        "listings of the region by type and price (cold start)."
    )
    rows = [
        [
            name,
            result.train_pairs.get(name, ""),
            round(result.train_seconds[name], 2),
            round(m.history_.train_loss[-1], 4) if isinstance(m, SkipGramEmbeddings) else "",
        ]
        for name, m in result.models.items()
    ]
    bp.table(["model", "training pairs", "train s", "final loss"], rows)


def fit_models_on_file(
    train: Sessions,
    listings: pd.DataFrame,
    cfg: SkipGramConfig,
    seed: int,
    progress: Callable[[str, float, float], None] | None = None,
) -> ModelsResult:
    """On a click log: popularity, co-occurrence and plain skip-gram (a log has no bookings,
    regions or attributes, so the refinements and the content baseline do not apply)."""
    n = len(listings)
    makers: dict[str, Callable[[], ListingSimilarity]] = {
        "region_popular": lambda: RegionPopular().fit(train, n),
        "cooccurrence": lambda: CoOccurrence().fit(train, n),
        SKIPGRAM: lambda: SkipGramEmbeddings(
            dim=cfg.dim,
            window=cfg.window,
            negatives=cfg.negatives,
            epochs=cfg.epochs,
            lr=cfg.lr,
            batch_size=cfg.batch_size,
            seed=seed,
        ).fit(train, listings),
    }
    return _fit_all(makers, progress)


def _fit_all(
    makers: dict[str, Callable[[], ListingSimilarity]],
    progress: Callable[[str, float, float], None] | None,
) -> ModelsResult:
    """Fit each model in turn, timing it; the skip-grams' training pairs come from their fit."""
    models: dict[str, ListingSimilarity] = {}
    seconds: dict[str, float] = {}
    for i, (name, make) in enumerate(makers.items()):
        if progress is not None:
            progress(f"fitting {name}", i, len(makers))
        t0 = time.perf_counter()
        models[name] = make()
        seconds[name] = time.perf_counter() - t0
    pairs = {n: m.n_pairs_ for n, m in models.items() if isinstance(m, SkipGramEmbeddings)}
    return ModelsResult(models, seconds, pairs)
