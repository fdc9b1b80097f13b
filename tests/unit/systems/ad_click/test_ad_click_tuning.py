"""The models step on files: every learner tuned on the validation rows, every field used."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.models import ClickEstimator, LightGBMClick
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.ad_click.datasets import read_files
from mlsd.systems.ad_click.datasets_synthetic import FIELDS, write_synthetic_libfm
from mlsd.systems.ad_click.features_split import compute_file_features
from mlsd.systems.ad_click.model import BASELINE, SEARCH_SPACES, candidate_models, negative_rate
from mlsd.systems.ad_click.model_fields import field_usage, report_fields, unused_fields
from mlsd.systems.ad_click.model_tuning import BUDGETS, report_models, train_tuned, tuning_budget
from mlsd.tuning import Budget

LEARNERS = ("logistic_regression", "lightgbm", "fm", "deepfm", "dcn_v2")


def small_lineup() -> dict[str, ClickEstimator]:
    """The chapter's line-up at test sizes (small id tables; the searched values stay valid)."""
    deep = {"field_buckets": 2**10, "num_threads": 1}
    models = candidate_models(0)
    models["logistic_regression"].set_params(n_bits=16)
    models["lightgbm"].set_params(n_estimators=20, num_threads=1)
    for name in ("fm", "deepfm", "dcn_v2"):
        models[name].set_params(**deep)
    return models


def _parts(spec: str, test_spec: str | None = None):  # type: ignore[no-untyped-def]
    data = compute_file_features(read_files(spec, test_spec), seed=0)
    tr, va = data.split["train"], data.split["validation"]
    train = (data.X.iloc[tr].reset_index(drop=True), data.y[tr])
    return data, train, (data.X.iloc[va].reset_index(drop=True), data.y[va])


def test_budget_by_scale_and_override() -> None:
    assert tuning_budget("tiny") == BUDGETS["tiny"]
    assert tuning_budget("small", 5.0) == Budget(5.0, BUDGETS["small"].max_trials)
    assert tuning_budget("small", 0.0) is None
    with pytest.raises(ValueError, match="MLSD_TUNE_BUDGET_S"):
        tuning_budget("small", -1.0)
    assert set(SEARCH_SPACES) == set(LEARNERS)


def test_libfm_learners_are_tuned_and_use_every_field(tmp_path: Path) -> None:
    syn = write_synthetic_libfm(tmp_path, n_train=500, n_test=150, seed=1)
    data, train, val = _parts(f"libfm:{syn.train}", f"libfm:{syn.test}")
    assert negative_rate(train[1]) == 1.0  # a third clicks: not downsampled
    assert data.downsampled_rows == len(train[1])
    trained = train_tuned(
        train, val, seed=0, budget=Budget(seconds=120.0, max_trials=2), models=small_lineup()
    )
    assert set(trained.tuning) == set(LEARNERS)
    for name in LEARNERS:
        study = trained.tuning[name]
        assert len(study.trials) == 2 and study.stopped_by == "trials"
        assert study.best_value <= (study.default_value or np.inf)
        assert trained.fields[name].keys() == {f"c_f{j}" for j in range(len(FIELDS))}
        assert unused_fields(trained.fields[name]) == [], (name, trained.fields[name])
    assert trained.fields["lightgbm"]["c_f1"].startswith("categorical")  # the item id, kept
    assert trained.fields["fm"]["c_f0"].startswith("embedding")
    assert len(unused_fields(trained.fields[BASELINE])) == len(FIELDS) - 1  # one key by design
    m = trained.metrics()["models"]
    assert m["dcn_v2"]["tuning"]["trials"] == 2 and "fields" in m["lightgbm"]
    bp = Blueprint("t")
    bp.section("Model development")
    report_models(bp, trained)
    text = bp.to_markdown()
    assert "validation log loss, best" in text and "| c_f1 |" in text
    assert "`historical_ctr` does not use" in text  # a model that cannot use a column says so


def _criteo_file(path: Path, n: int) -> Path:
    g = rng(0, "test/criteo-file")
    lines = []
    for _ in range(n):
        ints = [str(int(v)) if v >= 0 else "" for v in g.integers(-1, 50, 13)]
        cats = [f"{int(v):08x}" for v in g.integers(0, 30, 26)]
        lines.append("\t".join([str(int(g.random() < 0.3)), *ints, *cats]))
    path.write_text("\n".join(lines) + "\n")
    return path


def test_criteo_learners_use_every_field(tmp_path: Path) -> None:
    data, train, val = _parts(f"criteo:{_criteo_file(tmp_path / 'day_0', 400)}")
    trained = train_tuned(train, val, seed=0, budget=None, models=small_lineup())
    assert not trained.tuning
    columns = [c for c in data.X.columns if c.startswith(("c_", "d_"))]
    assert len(columns) == 26 + 26  # C1..C26, I1..I13 and their missing flags
    for name in LEARNERS:
        assert list(trained.fields[name]) == columns
        assert unused_fields(trained.fields[name]) == [], name
    assert trained.fields["lightgbm"]["d_I1"] == "numeric"
    assert trained.fields["dcn_v2"]["d_I1"] == "dense input"


def test_a_dropped_column_is_named_in_the_blueprint() -> None:
    n = 300
    X = pd.DataFrame(
        {
            "c_rare": np.arange(n, dtype=np.int64),  # every value once: nothing for a tree
            "c_kind": np.arange(n, dtype=np.int64) % 3,
            "d_x": np.linspace(0, 1, n),
        }
    )
    y = (np.arange(n) % 4 == 0).astype(np.int64)
    model = LightGBMClick(n_estimators=5, max_cat_cardinality=10, num_threads=1).fit(X, y)
    usage = field_usage(model, list(X.columns))
    assert unused_fields(usage) == ["c_rare"] and "no value seen 5 times" in usage["c_rare"]
    bp = Blueprint("t")
    bp.section("Models")
    report_fields(bp, {"lightgbm": usage})
    assert "`lightgbm` does not use `c_rare`" in bp.to_markdown()
