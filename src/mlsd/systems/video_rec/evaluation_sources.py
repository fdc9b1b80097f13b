"""Step 5 in the world: the collaborative learners as candidate sources (book ch. 6).

EASE, ALS, the Mult-VAE and LightGCN (both deep learners: LightGCN was the better one on the
synthetic MovieLens-shaped benchmark, the VAE needs no per-user parameters) are fitted on the
world's click log and measured where the chapter uses them, in candidate generation:

* **tuning**: each learner's small grid is fitted on the log before its last day and scored by
  recall@100 of the clicks of that last day (a time split inside the training log); the best
  point is refitted on the whole log;
* **retrieval**: recall@100 and @500 of each source against the same held-out truth as the
  offline evaluation (the world's draw of what each user would watch on the day after the log,
  the same users from the same named stream), beside the built-in sources;
* **downstream**: the ranked stack (the same ranking model) with each learner merged into the
  candidates, and with all of them, against the stack without them.

The served recommender is left as the models step built it: these figures say whether adding a
source pays, and the choice stays with the design. EASE inverts a videos × videos matrix and is
left out (with the reason) above its ``max_items``, the Mult-VAE above :data:`MAX_VAE_VIDEOS`
(medium's 30k videos).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pandas as pd

from mlsd import metrics as mm
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.video_rec.evaluation import MODE_LABELS, K, eval_users, ranking_metrics
from mlsd.systems.video_rec.features import Demographics
from mlsd.systems.video_rec.model_cf import CFSource
from mlsd.systems.video_rec.model_ease import EaseSource
from mlsd.systems.video_rec.model_lightgcn import LightGcnSource
from mlsd.systems.video_rec.model_mf import AlsSource
from mlsd.systems.video_rec.model_vae import VaeSource
from mlsd.systems.video_rec.serving import Recommender
from mlsd.systems.video_rec.world import VideoRecWorld

log = logging.getLogger(__name__)

Learner = CFSource | EaseSource
#: (class, fixed params, grid) per world source; small grids: the world run stays minutes.
WORLD_GRIDS: dict[str, tuple[type[Learner], dict[str, Any], list[dict[str, Any]]]] = {
    "ease": (EaseSource, {}, [{"l2": x} for x in (50.0, 500.0)]),
    "als": (
        AlsSource,
        {"iterations": 15, "alpha": 10.0},
        [{"factors": 64, "l2": x} for x in (30.0, 100.0)],
    ),
    "mult_vae": (
        VaeSource,
        {"hidden": 200, "latent": 64, "epochs": 20},
        [{"beta": b} for b in (0.2, 1.0)],
    ),
    "lightgcn": (
        LightGcnSource,
        {"dim": 64, "layers": 3, "epochs": 40},
        [{"l2": r} for r in (1e-3, 1e-2)],
    ),
}
VALIDATION_USERS = 500
MAX_VAE_VIDEOS = 10_000  # the Mult-VAE's dense input and softmax: minutes per fit beyond


def _make(name: str, params: dict[str, Any], seed: int) -> Learner:
    cls, fixed, _ = WORLD_GRIDS[name]
    extra = {} if cls is EaseSource else {"seed": seed}
    return cls(**fixed, **params, **extra)


def _recommend(m: Learner, hist: list[np.ndarray], users: np.ndarray, n: int) -> list[np.ndarray]:
    if isinstance(m, EaseSource):
        return m.recommend(hist, n)
    return m.recommend(hist, n, users=users)


def _clicks(log_df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = log_df["click"].to_numpy().astype(bool)
    u, v, d = (log_df[k].to_numpy().astype(np.int64)[c] for k in ("user_id", "video_id", "day"))
    return u, v, d


def tune(
    name: str, log_df: pd.DataFrame, n_videos: int, seed: int
) -> tuple[dict[str, Any], dict[str, float], float]:
    """The grid point with the best recall@100 of the last logged day's clicks, fitted on the
    days before; returns (params, recall per point, seconds)."""
    u, v, d = _clicks(log_df)
    last = int(d.max())
    fit = d < last
    hist_by = cast(
        dict[int, np.ndarray], pd.Series(v[fit]).groupby(u[fit]).apply(np.asarray).to_dict()
    )
    seen = {int(k): set(x.tolist()) for k, x in hist_by.items()}
    truth: dict[int, set[int]] = {}
    for uu, vv in zip(u[~fit].tolist(), v[~fit].tolist(), strict=True):
        if vv not in seen.get(uu, ()):
            truth.setdefault(uu, set()).add(vv)
    users = np.asarray(sorted(truth), np.int64)
    if len(users) > VALIDATION_USERS:
        users = np.sort(
            rng(seed, "video-rec/sources/validation-users").choice(
                users, VALIDATION_USERS, replace=False
            )
        )
    hist = [hist_by.get(int(x), np.zeros(0, np.int64)) for x in users]
    t0 = time.perf_counter()
    scores: dict[str, float] = {}
    grid = WORLD_GRIDS[name][2]
    for point in grid:
        m = _make(name, point, seed).fit(u[fit], v[fit], np.ones(int(fit.sum())), n_videos)
        recs = {
            int(x): lst.tolist()
            for x, lst in zip(users, _recommend(m, hist, users, 100), strict=True)
        }
        key = ", ".join(f"{k}={val:g}" for k, val in point.items())
        scores[key] = mm.mean_over_users(
            mm.recall_at_k, recs, {int(x): truth[int(x)] for x in users}, 100
        )
        log.info("world %s %s: validation recall@100 %.4f", name, key, scores[key])
    best = grid[int(np.argmax(list(scores.values())))]
    return best, scores, time.perf_counter() - t0


@dataclass(frozen=True)
class SourcesResult:
    """Each learner's tuning, recall and the ranked stack with it, on the offline day."""

    day: int
    users: int
    learners: dict[str, dict[str, Any]]  # name -> params, validation, seconds, recall@100/500
    builtin: dict[str, dict[str, float]]  # two_tower, popular, cowatch recall@100/500
    stacks: dict[str, dict[str, float]]  # "ranked", "ranked + ease", ... -> ranking metrics
    skipped: dict[str, str]

    def metrics(self) -> dict[str, Any]:
        return {
            "models": {n: dict(r) for n, r in self.learners.items()},
            "candidate_sources": {
                "day": self.day,
                "users": self.users,
                "builtin": self.builtin,
                "stacks": self.stacks,
                "skipped": self.skipped,
            },
        }


def compute_sources(
    rec: Recommender,
    world: VideoRecWorld,
    log_df: pd.DataFrame,
    n_videos: int,
    n_users: int,
    seed: int,
) -> SourcesResult:
    """Tune and fit every learner on the log; measure it on the offline day's truth."""
    learned: dict[str, Learner] = {}
    learners: dict[str, dict[str, Any]] = {}
    skipped: dict[str, str] = {}
    u, v, _ = _clicks(log_df)
    for name in WORLD_GRIDS:
        if name == "ease" and n_videos > EaseSource().max_items:
            skipped[name] = f"{n_videos:,} videos: more than EASE's max_items (a dense inverse)"
            continue
        if name == "mult_vae" and n_videos > MAX_VAE_VIDEOS:
            skipped[name] = (
                f"{n_videos:,} videos: its dense catalogue-wide input and softmax would take "
                f"tens of minutes per fit on 2 cores (run above {MAX_VAE_VIDEOS:,} videos only "
                "with a sampled softmax, not built here)"
            )
            continue
        params, val, tuning = tune(name, log_df, n_videos, seed)
        t0 = time.perf_counter()
        learned[name] = _make(name, params, seed).fit(u, v, np.ones(len(u)), n_videos)
        learners[name] = {
            "params": params,
            "validation_recall@100": val,
            "tuning_seconds": tuning,
            "train_seconds": time.perf_counter() - t0,
        }
    # the offline step's users and truth: the same stream on the same day
    gen = rng(seed, "video-rec/offline-eval")
    users = eval_users(world, n_users, gen)
    rel, oracle = world.relevance_sample(users, gen)
    relevant = {x: set(r) for x, r in rel.items()}
    row = {int(x): i for i, x in enumerate(users)}
    cats = dict(enumerate(rec.cat.videos["category"].tolist()))
    n_items = len(world.eligible_videos())
    with_all = dataclasses.replace(rec, learned=learned)
    demo = Demographics.of(rec.users, users)
    src = with_all.sources(with_all.us, users, demo, True, 500, 500, 500, 500)
    recall: dict[str, dict[str, float]] = {}
    for name, lists in src.items():
        recs = {int(x): [int(y) for y in lst] for x, lst in zip(users, lists, strict=True)}
        recall[name] = {
            f"recall@{k}": mm.mean_over_users(mm.recall_at_k, recs, relevant, k) for k in (100, 500)
        }
    for name in learners:
        learners[name] |= recall.get(name, {"recall@100": 0.0, "recall@500": 0.0})
    stacks: dict[str, dict[str, float]] = {}
    configs = {"ranked": {}, **{f"ranked + {n}": {n: m} for n, m in learned.items()}}
    if len(learned) > 1:
        configs["ranked + all learned"] = learned
    for label, chosen in configs.items():
        r = dataclasses.replace(rec, learned=chosen).recommend_users(users, K, "ranked")
        recs = {int(x): [int(y) for y in ids] for x, ids in zip(users, r.ids, strict=True)}
        minutes = {x: float(np.sum(oracle[row[x], ids])) for x, ids in recs.items()}
        stacks[label] = ranking_metrics(recs, rel, minutes, cats, n_items)
    builtin: dict[str, dict[str, float]] = {
        n: recall[n] for n in ("two_tower", "popular", "cowatch") if n in recall
    }
    return SourcesResult(world.day, len(users), learners, builtin, stacks, skipped)


def report_sources(bp: Blueprint, result: SourcesResult) -> None:
    bp.section("Candidate sources: collaborative learners")
    bp.text(
        "EASE, ALS (implicit, 2 threads), the Mult-VAE and LightGCN (PyTorch, 2 threads) fitted "
        "on the log's clicks "
        "and measured as candidate sources on the offline day's held-out truth (the same "
        f"{result.users} users and draw as the offline evaluation, day {result.day}). Each "
        "learner's grid was scored by recall@100 of the last logged day's clicks, fitted on the "
        "days before; the best point was refitted on the whole log. New videos of the day are "
        "out of their reach (no interactions): the content tower covers them."
    )
    rows: list[list[Any]] = [
        [MODE_LABELS.get(n, n), r["recall@100"], r["recall@500"], None, None, "—"]
        for n, r in result.builtin.items()
    ]
    for n, r in result.learners.items():
        params = ", ".join(f"{k}={v:g}" for k, v in r["params"].items())
        rows.append(
            [n, r["recall@100"], r["recall@500"], r["train_seconds"], r["tuning_seconds"], params]
        )
    bp.table(
        [
            "candidate source",
            "recall@100",
            "recall@500",
            "train s",
            "tuning s",
            "chosen on validation",
        ],
        rows,
    )
    keys = ("ndcg@10", "precision@10", "recall@10", "true_minutes@10")
    bp.table(
        ["ranked stack (same ranker)", *keys],
        [[n, *(r[k] for k in keys)] for n, r in result.stacks.items()],
        caption="The two-tower + popular + co-watch candidates ranked by the ranking model, "
        "without and with each learner's 100 candidates merged in.",
    )
    for n, why in result.skipped.items():
        bp.text(f"{n}: not run ({why}).")
