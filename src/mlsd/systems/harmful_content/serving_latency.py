"""Step 6 in the run: write the artifacts, load them back as the server does, and measure.

The scorer loaded from the artifacts classifies test posts one at a time (the image sent as PNG
bytes, one torch thread, as a request is served); its probabilities are compared with the
offline scores of the same posts (training/serving skew shows here), and its p99 latency is
reported against the requirements' budget.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.metrics import latency_summary
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.harmful_content import REQUIREMENTS
from mlsd.systems.harmful_content.evaluation import Thresholds
from mlsd.systems.harmful_content.features import ENGAGEMENT, Prepared
from mlsd.systems.harmful_content.model import Lineup
from mlsd.systems.harmful_content.serving import (
    Post,
    encode_png,
    load_scorer,
    save_serving_artifacts,
)
from mlsd.systems.harmful_content.world import HarmWorld
from mlsd.training import torch_threads

N_REQUESTS = 200


@dataclass(frozen=True)
class ServingReport:
    model: str
    latency_ms: dict[str, float]
    stage_ms: dict[str, float]
    max_abs_diff: float
    requests: int
    actions: dict[str, int]

    def metrics(self) -> dict[str, Any]:
        return {
            "serving": {
                "model": self.model,
                "latency_ms": self.latency_ms,
                "stage_ms_mean": self.stage_ms,
                "budget_ms": REQUIREMENTS.latency_budget_ms,
                "within_budget": self.latency_ms["p99"] <= REQUIREMENTS.latency_budget_ms,
                "max_abs_diff_vs_offline": self.max_abs_diff,
                "requests": self.requests,
                "actions": self.actions,
            }
        }


def _posts(p: Prepared, world: HarmWorld | None, rows: np.ndarray) -> list[Post]:
    out = []
    for i in rows:
        if world is None:
            out.append(Post(p.inputs.texts[int(i)]))
            continue
        row = world.posts.iloc[int(i)]
        image = encode_png(p.inputs.images[int(i)]) if p.inputs.has_image[int(i)] else None
        out.append(
            Post(
                p.inputs.texts[int(i)],
                image,
                int(row["author_id"]),
                {k: int(row[k]) for k in ENGAGEMENT},
            )
        )
    return out


def compute_serving(
    art: Path,
    p: Prepared,
    lineup: Lineup,
    chosen: str,
    th: Thresholds,
    world: HarmWorld | None,
    offline_test: np.ndarray,
    threads: int,
    n_requests: int = N_REQUESTS,
) -> ServingReport:
    if world is not None:
        authors = world.authors[["author_id", "signup_day", "followers", "past_violations"]]
        as_of = int(world.posts["day"].max()) + 1
        size = world.config.image_size
    else:
        authors = pd.DataFrame(
            {
                "author_id": np.zeros(0, np.int64),
                "signup_day": np.zeros(0, np.int64),
                "followers": np.zeros(0, np.int64),
                "past_violations": np.zeros(0, np.int64),
            }
        )
        as_of, size = 0, 1
    save_serving_artifacts(
        art,
        lineup,
        chosen,
        th,
        p.classes,
        "hashing" if p.encoder == "hashing" else "minilm",
        size,
        authors,
        as_of,
        p.inputs.meta.shape[1],
        uses_lex=True,  # the line-up's networks read TF-IDF's logits (system.step_models)
    )
    scorer = load_scorer(art)
    pick = np.sort(
        rng(0, "harmful-content/serving-sample").choice(
            len(p.test), min(n_requests, len(p.test)), replace=False
        )
    )
    rows = p.test[pick]
    posts = _posts(p, world, rows)
    if world is not None:  # the author features as of the post, as the offline rows saw them
        scorer.as_of_day = 0
    lat, stages = [], {"text": 0.0, "image": 0.0, "model": 0.0}
    actions = {a: 0 for a in ("remove", "review", "demote", "allow")}
    diffs = []
    with torch_threads(threads):
        scorer.classify(posts[0])  # warm-up (encoder load)
        for post, i, k in zip(posts, rows, pick, strict=True):
            if world is not None:
                scorer.as_of_day = int(world.posts["day"].to_numpy()[int(i)])
            t0 = time.perf_counter()
            res = scorer.classify(post)
            lat.append((time.perf_counter() - t0) * 1e3)
            for s in stages:
                stages[s] += res.timings_ms[s] / len(posts)
            actions[res.action] += 1
            got = np.array([res.probabilities[c] for c in p.classes])
            diffs.append(float(np.abs(got - offline_test[k]).max()))
    return ServingReport(chosen, latency_summary(lat), stages, max(diffs), len(posts), actions)


def report_serving(bp: Blueprint, r: ServingReport) -> None:
    budget = REQUIREMENTS.latency_budget_ms
    bp.text(
        f"The server loads the artifacts (the {r.model} model, the image CNN, the thresholds, the "
        f"author table; every file checked against the manifest) and classifies one post per "
        f"request: {r.requests} test posts sent one at a time, images as PNG bytes, one torch "
        f"thread. p99 {r.latency_ms['p99']:.1f} ms against a budget of {budget:.0f} ms "
        f"({'within' if r.latency_ms['p99'] <= budget else 'over'} budget). The served "
        f"probabilities differ from the offline ones by at most {r.max_abs_diff:.2g} (PNG "
        "round trip and float order), so training and serving compute the same features."
    )
    bp.table(["stage", "mean ms"], [[k, v] for k, v in r.stage_ms.items()])
    bp.table(["action", "requests"], [[k, v] for k, v in r.actions.items()])
