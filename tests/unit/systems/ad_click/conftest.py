"""A tiny world's run, step by step through the compute functions, shared by the ad-click tests
of the steps after the features (two quick models instead of the chapter's four)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from mlsd.models import ClickEstimator, HistoricalCTR, LightGBMClick, NegativeDownsampled
from mlsd.systems.ad_click.evaluation import OfflineEvaluation, compute_offline
from mlsd.systems.ad_click.features_split import TrainingData, compute_world_features
from mlsd.systems.ad_click.model import BASELINE, NEGATIVE_RATE, TrainedModels
from mlsd.systems.ad_click.serving_latency import ServingChoice, compute_serving
from mlsd.systems.ad_click.world import AdClickWorld
from mlsd.systems.ad_click.world_log import WorldLog, write_world_log

torch.set_num_threads(1)
SEED = 0


@dataclass(frozen=True)
class TinyRun:
    world_log: WorldLog
    data: TrainingData
    trained: TrainedModels

    @property
    def world(self) -> AdClickWorld:
        return self.world_log.world


def quick_models(data: TrainingData) -> TrainedModels:
    """The baseline and a small downsampled LightGBM, fitted on the training rows."""
    train = data.split["train"]
    X, y = data.X.iloc[train].reset_index(drop=True), data.y[train]
    gbdt = LightGBMClick(n_estimators=30, num_leaves=15, num_threads=1, random_state=SEED)
    models: dict[str, ClickEstimator] = {
        BASELINE: HistoricalCTR(key="c_ad_id").fit(X, y),
        "lightgbm": NegativeDownsampled(gbdt, rate=NEGATIVE_RATE, random_state=SEED).fit(X, y),
    }
    info = {
        name: {"train_seconds": 0.0, "class": type(m).__name__, "downsampled": name != BASELINE}
        for name, m in models.items()
    }
    return TrainedModels(models, info)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> TinyRun:
    world_log = write_world_log(AdClickWorld("tiny", seed=SEED), tmp_path_factory.mktemp("data"))
    data = compute_world_features(world_log, SEED)
    return TinyRun(world_log, data, quick_models(data))


@pytest.fixture(scope="session")
def data_dir(tiny_run: TinyRun) -> Path:
    return tiny_run.world_log.log_path.parent


@pytest.fixture(scope="session")
def offline(tiny_run: TinyRun) -> OfflineEvaluation:
    return compute_offline(tiny_run.trained, tiny_run.data)


@pytest.fixture(scope="session")
def serving(tiny_run: TinyRun, offline: OfflineEvaluation) -> ServingChoice:
    return compute_serving(
        tiny_run.trained,
        offline,
        tiny_run.data,
        tiny_run.world,
        scale="tiny",
        seed=SEED,
        torch_thread_count=1,
    )
