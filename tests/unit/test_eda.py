"""Step 3's exploratory data analysis: profile, label balance, leakage check, blueprint section."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.eda import profile_frame, report_eda, sample_parquet
from mlsd.report import Blueprint


def _table(n: int = 4000, seed: int = 1) -> pd.DataFrame:
    g = np.random.default_rng(seed)
    x = g.normal(size=n)
    y = (g.random(n) < 1 / (1 + np.exp(-(x - 2.0)))).astype(np.int8)
    country = g.choice(["fr", "de", "us"], size=n)
    age = g.integers(18, 70, size=n).astype(np.float64)
    age[g.random(n) < 0.25] = np.nan  # a quarter missing
    return pd.DataFrame(
        {
            "row_id": np.arange(n),  # unique: out of fold, it cannot memorise its row
            "x": x,  # informative, not a leak
            "age": age,
            "country": country,
            "clicked_later": y * 3 + g.integers(0, 2, size=n),  # written after the label: a leak
            "p_true": 1 / (1 + np.exp(-(x - 2.0))),
            "click": y,
        }
    )


def test_profile_missing_share_cardinality_and_summary() -> None:
    result = profile_frame(_table(), "click", table="t", seed=0, ground_truth=("p_true",))
    cols = {c.name: c for c in result.columns}
    assert "click" not in cols
    assert cols["age"].missing_share == pytest.approx(0.25, abs=0.03)
    assert cols["x"].missing_share == 0.0
    assert cols["country"].cardinality == 3 and cols["country"].kind == "categorical"
    assert cols["country"].top_share == pytest.approx(1 / 3, abs=0.05)
    assert cols["row_id"].cardinality == 4000
    assert cols["x"].mean == pytest.approx(0.0, abs=0.1) and cols["x"].std == pytest.approx(1, 0.1)
    assert "median" in cols["x"].summary() and "top" in cols["country"].summary()
    assert sum(n for _, n in result.label_counts) == 4000
    assert 0.05 < result.positive_rate < 0.3


def test_leakage_flags_the_leak_and_not_ids_or_ground_truth() -> None:
    result = profile_frame(_table(), "click", table="t", seed=0, ground_truth=("p_true",))
    checks = {c.column: c for c in result.leakage}
    assert result.flagged == ("clicked_later",)
    assert checks["clicked_later"].roc_auc > 0.99
    assert checks["row_id"].roc_auc < 0.6  # out of fold: a unique id predicts nothing
    assert 0.6 < checks["x"].roc_auc < AUC_CEILING
    assert checks["p_true"].ground_truth and not checks["p_true"].flagged
    assert checks["p_true"].roc_auc == pytest.approx(checks["x"].roc_auc, abs=0.02)
    assert checks["clicked_later"].mi_share > 0.5 > checks["x"].mi_share


AUC_CEILING = 0.9


def test_sampled_profile_is_seeded_and_metrics_are_plain(tmp_path: Path) -> None:
    frame = _table(6000)
    a = profile_frame(frame, "click", table="t", seed=3, max_rows=2000, skip_leakage=("row_id",))
    b = profile_frame(frame, "click", table="t", seed=3, max_rows=2000, skip_leakage=("row_id",))
    assert a == b and a.rows_profiled == 2000 and a.rows_total == 6000
    assert "row_id" not in {c.column for c in a.leakage}
    m = a.metrics()["eda"]
    assert m["flagged"] == ["clicked_later"] and m["rows_profiled"] == 2000
    assert set(m["columns"]["age"]) == {"kind", "missing_share", "cardinality", "summary"}
    path = tmp_path / "t.parquet"
    frame.to_parquet(path)
    sample, total = sample_parquet("SELECT * FROM t WHERE x > 0", 0, max_rows=500, t=path)
    assert total == int((frame["x"] > 0).sum()) and len(sample) == 500
    assert (sample["x"] > 0).all()


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="no label column 'y'"):
        profile_frame(_table(), "y", table="t", seed=0)
    bad = _table().assign(click=2)
    with pytest.raises(ValueError, match="binary"):
        profile_frame(bad, "click", table="t", seed=0)


def test_report_writes_section_tables_and_figures() -> None:
    bp = Blueprint("t")
    report_eda(bp, profile_frame(_table(), "click", table="t", seed=0, ground_truth=("p_true",)))
    md = bp.to_markdown()
    assert "## 1. Exploratory data analysis" in md
    assert "**Flagged: `clicked_later`**" in md and "ceiling" in md
    assert md.count("figures/eda_") == 2
    leak_row = md.rsplit("| clicked_later | ", 1)[1].split(" |")
    assert float(leak_row[0]) > 0.99 and leak_row[2].strip() == "LEAK?"


def test_rank_auc_matches_the_metrics_module() -> None:
    from mlsd.eda import _auc
    from mlsd.metrics import roc_auc

    g = np.random.default_rng(5)
    y = (g.random(3000) < 0.1).astype(np.float64)
    s = np.round(1 / (1 + np.exp(-(g.normal(size=3000) + y))), 2)  # ties on purpose
    assert _auc(y, s) == pytest.approx(roc_auc(y, s), abs=1e-12)


def test_too_few_rows_of_a_class_flag_nothing() -> None:
    frame = _table(400)
    frame = frame[(frame["click"] == 0) | (frame.index < 120)].reset_index(drop=True)
    assert 0 < frame["click"].sum() < 30
    result = profile_frame(frame, "click", table="t", seed=0)
    assert result.flagged == ()
    bp = Blueprint("t")
    report_eda(bp, result)
    assert "nothing is flagged" in bp.to_markdown()
