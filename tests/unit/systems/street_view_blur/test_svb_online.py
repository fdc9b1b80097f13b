"""The report-based A/B test and the refusals of the run."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from mlsd.cli import app
from mlsd.systems.street_view_blur.evaluation_online import Arm, compute_online
from mlsd.systems.street_view_blur.model_haar import HaarCascades
from mlsd.systems.street_view_blur.world import StreetConfig, StreetWorld
from mlsd.world import Scale


class Fixed(HaarCascades):
    """A stand-in detector: nothing, or one box over the whole image."""

    def __init__(self, everything: bool = False) -> None:
        self.everything = everything

    def detect(self, images: np.ndarray, min_score: float = 0.0) -> pd.DataFrame:
        n = len(images) if self.everything else 0
        h, w = images.shape[1:3]
        return pd.DataFrame(
            {
                "image": np.arange(n),
                "label": np.zeros(n, np.int64),
                "x": 0.0,
                "y": 0.0,
                "w": float(w),
                "h": float(h),
                "score": 1.0,
            }
        )


WORLD = StreetWorld(Scale.TINY, 0, StreetConfig.for_scale(Scale.TINY).with_(ab_images_per_day=60))


def test_blurring_nothing_against_nothing_is_inconclusive() -> None:
    nothing = Arm("nothing", Fixed(), (0.5, 0.5))
    ab = compute_online(WORLD, nothing, nothing).ab
    assert ab.decision == "inconclusive"
    assert ab.arms["control"]["reports"] > 0 and ab.srm.p_value > 0.001


def test_blurring_everything_ends_reports_but_breaks_the_over_blur_budget() -> None:
    nothing = Arm("nothing", Fixed(), (0.5, 0.5))
    everything = Arm("everything", Fixed(everything=True), (0.5, 0.5))
    ab = compute_online(WORLD, nothing, everything).ab
    assert ab.arms["treatment"]["reports"] == 0
    assert ab.tests["reports_per_image"].improved
    assert ab.decision == "don't ship" and "over-blur" in ab.reason


def test_large_scale_and_test_data_are_refused_before_anything_runs(tmp_path: object) -> None:
    out = f"{tmp_path}/run"
    r = CliRunner().invoke(app, ["run", "street-view-blur", "--scale", "large", "--out", out])
    assert r.exit_code == 2 and "mlsd blur" in r.output
    r = CliRunner().invoke(
        app, ["run", "street-view-blur", "--data", "coco:x", "--test-data", "coco:y", "--out", out]
    )
    assert r.exit_code == 2 and "split their images" in r.output
