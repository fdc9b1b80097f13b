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
SKIPGRAM_REGION = "skipgram_region_negatives"
SKIPGRAM_FULL = "skipgram_booked_region_negatives"
BASELINES = ("region_popular", "cooccurrence", "attributes")


@dataclass(frozen=True)
class SkipGramConfig:
    """The skip-gram's settings at one scale (the refinements are switched per model), chosen
    on validation days (:mod:`.model_tuning`). ``negatives`` random (unigram) negatives per pair
    without hard negatives; with them, ``negatives_with_region`` random ones and
    ``region_negatives`` from the centre listing's region."""

    dim: int = 32
    window: int = 4
    negatives: int = 5
    region_negatives: int = 10
    negatives_with_region: int = 0
    epochs: int = 5
    lr: float = 0.02
    batch_size: int = 1024
    scoring: str = "dot"
    output_bias: bool = True

    def params(self) -> dict[str, Any]:
        return dict(
            dim=self.dim,
            window=self.window,
            epochs=self.epochs,
            lr=self.lr,
            batch_size=self.batch_size,
            scoring=self.scoring,
            output_bias=self.output_bias,
        )


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
    """The three baselines and the skip-gram plain, with each refinement alone, and with
    both."""
    n = len(listings)
    variants = {
        SKIPGRAM: dict(booked_global=False, negatives=cfg.negatives, region_negatives=0),
        SKIPGRAM_BOOKED: dict(booked_global=True, negatives=cfg.negatives, region_negatives=0),
        SKIPGRAM_REGION: dict(
            booked_global=False,
            negatives=cfg.negatives_with_region,
            region_negatives=cfg.region_negatives,
        ),
        SKIPGRAM_FULL: dict(
            booked_global=True,
            negatives=cfg.negatives_with_region,
            region_negatives=cfg.region_negatives,
        ),
    }
    makers: dict[str, Callable[[], ListingSimilarity]] = {
        "region_popular": lambda: RegionPopular().fit(train, n),
        "cooccurrence": lambda: CoOccurrence().fit(train, n),
        "attributes": lambda: AttributeSimilarity().fit(listings),
    }
    for name, flags in variants.items():

        def make(flags: dict[str, Any] = flags) -> ListingSimilarity:
            return SkipGramEmbeddings(**cfg.params(), seed=seed, **flags).fit(train, listings)

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
        "trained four times to show each refinement: plain; with the booked listing as a "
        "global context; with hard negatives instead of random ones "
        f"({cfg.region_negatives} negatives per pair drawn from the centre listing's region "
        f"and {cfg.negatives_with_region} random ones); and with both. Two listings are "
        f"compared by the model's own score ({cfg.scoring}: the viewed listing's input "
        "vector times the candidate's output vector"
        + (", plus the candidate's output bias" if cfg.output_bias else "")
        + "); with negatives from the region it estimates how likely the candidate is to "
        "be clicked or booked after the viewed one, which the cosine of the vectors forgets "
        "(settings chosen on validation days, see model_tuning.py). "
        "Listings without training clicks get the mean vectors of their 5 nearest clicked "
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
            **cfg.params(), negatives=cfg.negatives, seed=seed
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
