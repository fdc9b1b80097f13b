"""Step 7 for street-view blurring: input, score and detection-rate drift as the fleet changes.

The reference is the validation images (the training period). Each monitored day after it, the
fleet's new images (more night, fog, camera blur, lower exposure as the days pass) are run
through the served blurrer, and the day's row holds the PSI of the images' brightness,
contrast and sharpness (log Laplacian variance), the PSI of the detection scores (every
candidate scoring at least ``SCORE_FLOOR``: the score distribution) and the detections per
image against the reference's. :func:`mlsd.monitoring.drift_alerts` turns the table into
alerts, a detection rate outside ``RATE_BAND`` of the reference's is a prediction-drift alert,
and :func:`mlsd.monitoring.retrain_trigger` decides. The world's true blurred-area recall of the
day is shown beside it: what user reports would reveal only later.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
import pandas as pd

from mlsd.monitoring import Alert, daily_monitoring_row, drift_alerts, retrain_trigger
from mlsd.report import Blueprint
from mlsd.systems.street_view_blur.evaluation import coverage, kept
from mlsd.systems.street_view_blur.serving import Blurrer
from mlsd.systems.street_view_blur.world import ImageSet, StreetWorld

MONITORED = ("brightness", "contrast", "sharpness")
SCORE_FLOOR = 0.1
RATE_BAND = (0.7, 1.3)


@dataclass(frozen=True)
class Monitoring:
    daily: pd.DataFrame
    alerts: list[Alert]
    retrain: bool
    reason: str

    def metrics(self) -> dict[str, Any]:
        return {
            "monitoring": {
                "daily": self.daily.to_dict("records"),
                "alerts": [a.to_dict() for a in self.alerts],
                "retrain": self.retrain,
                "retrain_reason": self.reason,
            }
        }


def image_stats(images: np.ndarray) -> pd.DataFrame:
    rows = []
    for img in images:
        gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
        lap = cv2.Laplacian(gray, cv2.CV_64F)
        rows.append((float(gray.mean()), float(gray.std()), float(np.log1p(lap.var()))))
    return pd.DataFrame(rows, columns=list(MONITORED))


def _day(data: ImageSet, blurrer: Blurrer) -> tuple[pd.DataFrame, np.ndarray, float, float]:
    det = blurrer.model.detect(data.images)
    scores = det["score"].to_numpy()
    blurred = kept(det, blurrer.thresholds)
    cov = coverage(data, blurred)
    area = (data.boxes["w"] * data.boxes["h"]).to_numpy()
    recall = float((cov * area).sum() / area.sum()) if area.sum() > 0 else float("nan")
    return (
        image_stats(data.images),
        scores[scores >= SCORE_FLOOR],
        len(blurred) / max(1, len(data)),
        recall,
    )


def compute_monitoring(world: StreetWorld, blurrer: Blurrer, reference: ImageSet) -> Monitoring:
    ref, ref_scores, ref_rate, ref_recall = _day(reference, blurrer)
    rows = []
    for day in range(1, world.config.monitor_days + 1):
        data = world.day_images("monitor", day, world.config.monitor_images_per_day)
        cur, scores, rate, recall = _day(data, blurrer)
        row = daily_monitoring_row(day, ref, cur, list(MONITORED), reference_p=ref_scores, p=scores)
        row["detections_per_image"] = rate
        row["detection_rate_ratio"] = rate / ref_rate if ref_rate > 0 else float("nan")
        row["night_share"] = float(data.meta["night"].mean())
        row["true_area_share"] = recall
        rows.append(row)
    daily = pd.DataFrame(rows)
    floors = ["noise_floor_psi", "noise_floor_prediction_psi"]
    alerts = drift_alerts(
        daily[["day", *(f"psi_{c}" for c in MONITORED), "prediction_psi", *floors]]
    )
    lo, hi = RATE_BAND
    for rec in rows:
        ratio, day = float(rec["detection_rate_ratio"]), int(rec["day"])
        if not lo <= ratio <= hi:
            msg = (
                f"day {day}: {rec['detections_per_image']:.2f} detections per image, "
                f"{ratio:.2f}× the reference's {ref_rate:.2f} (outside {lo}–{hi}×)"
            )
            alerts.append(Alert(day, "prediction_drift", "detection_rate", ratio, lo, msg))
    retrain, reason = retrain_trigger(alerts)
    return Monitoring(daily.assign(reference_area_share=ref_recall), alerts, retrain, reason)


def report_monitoring(bp: Blueprint, mon: Monitoring) -> None:
    bp.section("Monitoring")
    bp.text(
        "Each day after training, the fleet's new images against the validation images: PSI of "
        "brightness, contrast and sharpness, PSI of the detection scores, and detections per "
        "image. The true blurred-area share (from the world's boxes) shows what the drift costs."
    )
    cols = [
        "day",
        "night_share",
        "psi_brightness",
        "psi_sharpness",
        "prediction_psi",
        "detections_per_image",
        "detection_rate_ratio",
        "true_area_share",
    ]
    bp.table(cols, [[r[c] for c in cols] for r in mon.daily[cols].to_dict("records")])
    bp.text(
        f"{len(mon.alerts)} alerts; retrain {'**triggered**' if mon.retrain else 'not triggered'}: "
        f"{mon.reason}"
    )
