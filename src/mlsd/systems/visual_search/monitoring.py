"""Step 7 for visual search: are the uploads still the photos the encoder was trained for?

The world goes on after training one simulated day at a time: users upload photos of catalogue
products, and from some day a growing share of them come from a new camera that takes dim, soft
photos (:meth:`VisualSearchWorld.uploads`). The encoder, the catalogue embeddings and the index
stay as served. Each day's uploads are compared with the training window, day 0's uploads
(photos as the encoder was trained and evaluated on, twice a monitored day's number):

* **inputs**: PSI and KS of simple image statistics (brightness, contrast, saturation,
  sharpness);
* **embeddings**: the served encoder's embeddings (:func:`mlsd.monitoring_signals.embedding_drift`:
  PSI on the reference's principal axes, how far the mean moved in units of its spread);
* **predictions**: PSI of the top-1 cosine similarity of each search (how sure the search is;
  exact search over the served catalogue embeddings: the served index's recall against exact
  search is step 6's);
* **quality**, from the world's ground truth (every upload's product is known; the oracle's
  mAP@10 is 1 on this catalogue): mAP@10 and hit@1 of the day's searches against day 0's.

PSI >= 0.25 is an alert; mAP@10 more than 10 % below day 0 (and beyond two standard errors) is a
metric-decay alert (standard errors clustered by product), which retrains at once
(:func:`mlsd.monitoring.retrain_trigger`).
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from mlsd import metrics as mm
from mlsd import monitoring as mon
from mlsd import monitoring_signals as signals
from mlsd.index import exact_top_k
from mlsd.report import Blueprint
from mlsd.systems.visual_search.datasets_split import RetrievalSet
from mlsd.systems.visual_search.evaluation import K
from mlsd.systems.visual_search.model import ImageEncoder
from mlsd.systems.visual_search.world import VisualSearchWorld

log = logging.getLogger(__name__)

STATS = ("brightness", "contrast", "saturation", "sharpness")
QUALITY_DROP = 0.10  # relative drop of mAP@10 below day 0 that alerts
REFERENCE_DAYS = 2  # day 0's uploads (the training window): this many days' worth


def image_stats(images: np.ndarray) -> pd.DataFrame:
    """Per image: mean grey level, its standard deviation, mean channel spread (saturation)
    and the log variance of the Laplacian (sharpness)."""
    x = np.asarray(images, dtype=np.float32)
    grey = x.mean(axis=3)
    lap = (
        4 * grey[:, 1:-1, 1:-1]
        - grey[:, :-2, 1:-1]
        - grey[:, 2:, 1:-1]
        - grey[:, 1:-1, :-2]
        - grey[:, 1:-1, 2:]
    )
    return pd.DataFrame(
        {
            "brightness": grey.mean(axis=(1, 2)),
            "contrast": grey.std(axis=(1, 2)),
            "saturation": (x.max(axis=3) - x.min(axis=3)).mean(axis=(1, 2)),
            "sharpness": np.log1p(lap.var(axis=(1, 2))),
        }
    )


def search_quality(
    catalogue: np.ndarray, queries: np.ndarray, query_groups: np.ndarray, index_groups: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact search of the catalogue: per query the top-1 similarity, AP@K and hit@1."""
    scores, top = exact_top_k(catalogue, queries, K)
    by_group: dict[Any, set[int]] = {}
    for i, g in enumerate(index_groups.tolist()):
        by_group.setdefault(g, set()).add(i)
    ap, hit = np.zeros(len(queries)), np.zeros(len(queries))
    for q, g in enumerate(query_groups.tolist()):
        recs = [int(i) for i in top[q] if i >= 0]
        relevant = by_group.get(g, set())
        ap[q] = mm.average_precision_at_k(recs, relevant, K)
        hit[q] = mm.hit_rate_at_k(recs, relevant, 1)
    return scores[:, 0], ap, hit


def clustered_se(values: np.ndarray, clusters: np.ndarray) -> float:
    """Standard error of ``values.mean()`` when values of one cluster (the uploads of one
    product) are correlated: the sandwich estimate over clusters."""
    n = len(values)
    if n < 2:
        return float("nan")
    _, idx = np.unique(clusters, return_inverse=True)
    sums = np.bincount(idx, weights=values - values.mean())
    g = len(sums)
    correction = g / (g - 1) if g > 1 else 1.0
    return float(np.sqrt(correction * np.sum(sums**2)) / n)


@dataclass(frozen=True)
class Monitoring:
    """Step 7: the per-day table, day 0's figures, the alerts and the retrain decision."""

    model: str
    baseline: dict[str, float]
    daily: pd.DataFrame
    alerts: list[mon.Alert]
    retrain: bool
    reason: str
    thresholds: mon.DriftThresholds

    def metrics(self) -> dict[str, Any]:
        return {
            "monitoring": {
                "model": self.model,
                "baseline": self.baseline,
                "thresholds": {**asdict(self.thresholds), "quality_drop": QUALITY_DROP},
                "days": [
                    {**r, "day": int(r["day"]), "uploads": int(r["uploads"])}
                    for r in self.daily.to_dict("records")
                ],
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "retrain_reason": self.reason,
            }
        }


def compute_monitoring(
    world: VisualSearchWorld,
    rs: RetrievalSet,
    model: str,
    encoder: ImageEncoder,
    catalogue: np.ndarray,
) -> Monitoring:
    """Watch ``world.config.monitor_days`` days of uploads searched with the served ``encoder``
    over its ``catalogue`` embeddings (step 5), against day 0's uploads (the training window)."""
    cfg = world.config
    ref_pids, ref_photos, _ = world.uploads(0, REFERENCE_DAYS * cfg.monitor_uploads)
    ref_stats = image_stats(ref_photos)
    ref_emb = encoder.encode(ref_photos)
    ref_top1, ref_ap, ref_hit = search_quality(catalogue, ref_emb, ref_pids, rs.index_groups)
    baseline = {
        "uploads": float(len(ref_ap)),
        "map": float(ref_ap.mean()),
        "map_se": clustered_se(ref_ap, ref_pids),
        "hit1": float(ref_hit.mean()),
        "top1_similarity": float(ref_top1.mean()),
    }
    rows = []
    for day in range(1, cfg.monitor_days + 1):
        pids, photos, dim = world.uploads(day, cfg.monitor_uploads)
        stats = image_stats(photos)
        drift = mon.feature_drift(ref_stats, stats, STATS)
        emb = encoder.encode(photos)
        top1, ap, hit = search_quality(catalogue, emb, pids, rs.index_groups)
        shift = signals.embedding_drift(ref_emb, emb)
        row: dict[str, float] = {
            "day": float(day),
            "uploads": float(len(photos)),
            "low_light_share": float(dim.mean()),
        }
        row.update({f"psi_{s}": float(v) for s, v in zip(STATS, drift["psi"], strict=True)})
        row["max_ks"] = float(drift["ks"].max())
        row["psi_embedding"] = shift["psi"]
        row["embedding_mean_shift"] = shift["mean_shift"]
        row["prediction_psi"] = mon.psi(ref_top1, top1)
        row["top1_similarity"] = float(top1.mean())
        row["map"] = float(ap.mean())
        row["map_se"] = clustered_se(ap, pids)
        row["hit1"] = float(hit.mean())
        rows.append(row)
        log.info("visual-search monitoring: day %d, mAP@%d %.3f", day, K, row["map"])
    daily = pd.DataFrame(rows)
    thresholds = mon.DriftThresholds()
    cols = ["day", *(f"psi_{s}" for s in STATS), "psi_embedding", "prediction_psi"]
    alerts = mon.drift_alerts(daily[cols], thresholds)
    alerts += signals.metric_decay_alerts(
        daily,
        "map",
        baseline["map"],
        QUALITY_DROP,
        se_column="map_se",
        baseline_se=baseline["map_se"],
    )
    alerts.sort(key=lambda a: (a.day, a.kind, a.subject))
    retrain, reason = mon.retrain_trigger(alerts)
    return Monitoring(model, baseline, daily, alerts, retrain, reason, thresholds)


def report_monitoring(bp: Blueprint, result: Monitoring) -> None:
    """The blueprint's step 7: drift per day, quality from the ground truth, alerts, retrain."""
    bp.section("Monitoring")
    th, base = result.thresholds, result.baseline
    bp.text(
        "After training the world goes on day by day: users upload photos of catalogue "
        "products, and from some day a growing share come from a new camera that takes dim, "
        f"soft photos. The served encoder ({result.model}), the catalogue embeddings and the "
        "index stay as trained. Each day's uploads against the training window (day 0's "
        f"{int(base['uploads']):,} uploads): PSI and KS of image statistics; PSI of the "
        "embeddings on the reference's principal axes and how far their mean moved (in units "
        "of the reference's spread); PSI of each search's top-1 similarity; and quality from "
        f"the ground truth (each upload's product): mAP@{K} against {base['map']:.3f} on day "
        f"0. PSI >= {th.psi_alert:g} alerts; mAP@{K} more than {QUALITY_DROP:.0%} below day 0 "
        "(beyond two standard errors, clustered by product) is a metric-decay alert."
    )
    d = result.daily
    bp.table(
        [
            "day",
            "new-camera share",
            "PSI brightness",
            "PSI sharpness",
            "embedding PSI",
            "embedding mean shift",
            "top-1 sim. PSI",
            f"mAP@{K}",
            "hit@1",
        ],
        [
            [
                int(r["day"]),
                r["low_light_share"],
                r["psi_brightness"],
                r["psi_sharpness"],
                r["psi_embedding"],
                r["embedding_mean_shift"],
                r["prediction_psi"],
                r["map"],
                r["hit1"],
            ]
            for r in d.to_dict("records")
        ],
    )
    if result.alerts:
        bp.text("\n".join(f"- {a.message}" for a in result.alerts[:12]))
    bp.text(f"**Retrain triggered: {'yes' if result.retrain else 'no'}.** {result.reason}")
