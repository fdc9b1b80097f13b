"""mlsd.latency and mlsd.tradeoffs: the rule, the budget sweep, batch vs online."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlsd.latency import (
    Timer,
    choose_within_budget,
    close_calls,
    in_rounds,
    row_blocks,
    time_blocks,
    time_calls,
)
from mlsd.report import Blueprint
from mlsd.tradeoffs import (
    BatchVsOnline,
    PredictionMode,
    measure_by_candidates,
    report_batch_vs_online,
    report_budget_sweep,
    sweep_budgets,
)

AUC = {"lr": 0.70, "gbdt": 0.75, "deep": 0.80}  # higher is better


def test_rule_serves_the_most_accurate_within_budget_and_falls_back() -> None:
    p99 = {"lr": 0.5, "gbdt": 4.0, "deep": 20.0}
    assert choose_within_budget(AUC, p99, 5.0, higher_is_better=True).chosen == "gbdt"
    assert choose_within_budget(AUC, p99, 50.0, higher_is_better=True).chosen == "deep"
    none = choose_within_budget(AUC, p99, 0.1, higher_is_better=True)
    assert none.chosen is None and none.served == "deep" and none.eligible == ()
    nce = {"a": 0.9, "b": 0.95}  # lower is better
    assert choose_within_budget(nce, {"a": 1, "b": 1}, 2, higher_is_better=False).chosen == "a"
    with pytest.raises(ValueError, match="no latency"):
        choose_within_budget(AUC, {"lr": 1.0}, 5.0, higher_is_better=True)
    assert close_calls(p99, 5.0, 0.2) == ["gbdt"]


def test_in_rounds_takes_medians_and_spread() -> None:
    samples = iter([np.full(10, 1.0), np.full(10, 9.0), np.full(10, 2.0)])
    lat = in_rounds({"m": lambda: next(samples)}, rounds=3)
    assert lat["m"]["p99"] == pytest.approx(2.0)
    assert (lat["m"]["p99_min"], lat["m"]["p99_max"]) == (1.0, 9.0)
    assert len(time_calls(lambda: None, 7, warmup=1)) == 7


def test_sweep_remakes_the_choice_per_budget_and_count() -> None:
    cost = {"lr": 0.01, "gbdt": 0.04, "deep": 0.2}  # ms per candidate

    def timer_for(name: str, k: int) -> Timer:
        return lambda: np.full(5, cost[name] * k)

    lat = measure_by_candidates(timer_for, list(AUC), [10, 100, 1000], rounds=2)
    sweep = sweep_budgets(AUC, lat, metric="AUC", higher_is_better=True, measured="fake")
    assert sweep.served(1.0, 10) == "gbdt"  # deep takes 2 ms at 10 candidates
    assert sweep.served(5.0, 10) == "deep"
    assert sweep.served(1.0, 1000) is None  # even lr takes 10 ms
    assert sweep.served(50.0, 1000) == "gbdt"
    assert sweep.served(200.0, 1000) == "deep"
    rules = sweep.rules()
    assert rules[2] == (
        "1000 candidates: under 10 ms: no model fits; 10–<50 ms: lr; 50–<200 ms: gbdt; "
        "≥ 200 ms: deep"
    )
    assert rules[0] == "10 candidates: under 5 ms: gbdt; ≥ 5 ms: deep"
    m = sweep.metrics()["tradeoffs"]["budget_sweep"]
    assert m["chosen"]["1000"]["1"] is None and m["chosen"]["10"]["5"] == "deep"
    assert m["p99_ms"]["100"]["lr"] == pytest.approx(1.0)
    bp = Blueprint("t")
    report_budget_sweep(bp, sweep)
    assert "— (none fits)" in bp.to_markdown()


def test_batch_vs_online_compute_per_day() -> None:
    table = BatchVsOnline(
        "recall@10",
        (
            PredictionMode("batch (daily)", 0.30, 24.0, 0.1, 1e6, 0.5),
            PredictionMode("online", 0.34, 0.0, 20.0, 3.6e6, 1.0),
        ),
        "1M users, 3.6M requests a day",
    )
    modes = table.metrics()["tradeoffs"]["batch_vs_online"]["modes"]
    assert modes["online"]["compute_hours_per_day"] == pytest.approx(1.0)
    assert modes["batch (daily)"]["compute_hours_per_day"] == pytest.approx(0.5 / 3.6)
    bp = Blueprint("t")
    bp.section("s")
    report_batch_vs_online(bp, table)
    assert "batch (daily)" in bp.to_markdown()


def test_time_blocks_times_every_block_after_the_warmup() -> None:
    seen: list[int] = []
    samples = time_blocks(seen.append, [1, 2, 3, 4], warmup=1)
    assert seen == [1, 2, 3, 4] and samples.shape == (3,) and (samples >= 0).all()
    with pytest.raises(ValueError, match="none after 4 warm-up"):
        time_blocks(seen.append, [1, 2, 3, 4], warmup=4)


def test_row_blocks_are_seeded_samples_of_k_rows() -> None:
    X = pd.DataFrame({"a": range(50)})
    one = row_blocks(X, 7, 3, np.random.default_rng(0))
    two = row_blocks(X, 7, 3, np.random.default_rng(0))
    assert [len(b) for b in one] == [7, 7, 7]
    assert all(a.equals(b) for a, b in zip(one, two, strict=True))
    assert list(one[0].index) == list(range(7))
