"""mlsd.tuning: a seeded, budgeted Optuna search that returns data."""

from __future__ import annotations

from typing import Any

import pytest

from mlsd.report import Blueprint
from mlsd.tuning import Budget, Param, check_space, choice, integer, real, report_tuning, tune

SPACE = (real("x", -3.0, 3.0), integer("n", 1, 8), choice("layers", ((8,), (16, 8))))


def bowl(params: dict[str, Any]) -> float:
    """A deterministic objective with its minimum at x = 1, n = 5, layers = (16, 8)."""
    return (
        (params["x"] - 1.0) ** 2
        + (params["n"] - 5) ** 2
        + (0.0 if len(params["layers"]) == 2 else 1.0)
    )


def test_same_seed_same_trials_and_best() -> None:
    budget = Budget(seconds=60.0, max_trials=6)
    a = tune("bowl", bowl, SPACE, budget, seed=3, metric="loss")
    b = tune("bowl", bowl, SPACE, budget, seed=3, metric="loss")
    assert a.best_params == b.best_params and a.best_value == b.best_value
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    c = tune("bowl", bowl, SPACE, budget, seed=4, metric="loss")
    assert [t.params for t in c.trials] != [t.params for t in a.trials]  # the seed matters


def test_trial_cap_is_respected_and_defaults_run_first() -> None:
    defaults = {"x": 0.0, "n": 2, "layers": (8,)}
    result = tune(
        "bowl",
        bowl,
        SPACE,
        Budget(seconds=60.0, max_trials=4),
        seed=0,
        metric="loss",
        defaults=defaults,
    )
    assert len(result.trials) == 4 and result.stopped_by == "trials"
    assert dict(result.trials[0].params) == defaults
    assert result.default_value == bowl(defaults)
    assert result.best_value <= result.default_value  # never worse than the defaults
    assert result.best_value == min(t.value for t in result.trials if t.value is not None)
    m = result.metrics()
    assert (
        m["trials"] == 4 and len(m["table"]) == 4 and m["best_params"]["layers"] in ([8], [16, 8])
    )


def test_time_budget_stops_new_trials() -> None:
    import time

    def slow(params: dict[str, Any]) -> float:
        time.sleep(0.3)
        return bowl(params)

    result = tune("slow", slow, SPACE, Budget(seconds=0.05, max_trials=50), seed=0, metric="loss")
    assert len(result.trials) == 1 and result.stopped_by == "time"


@pytest.mark.parametrize(
    ("space", "message"),
    [
        ((), "empty"),
        ((real("lr", 1.0, 0.1),), "'lr'.*low <= high"),
        ((real("lr", 0.0, 1.0, log=True),), "'lr'.*low > 0"),
        ((choice("layers", ()),), "'layers'.*at least one choice"),
        ((real("lr", 0.1, 1.0), real("lr", 0.1, 1.0)), "twice.*lr"),
        ((Param("depth", "bool"),), "'depth'.*kind"),  # type: ignore[arg-type]
    ],
)
def test_bad_search_space_is_a_clear_error(space: tuple[Param, ...], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tune("bad", bowl, space, Budget(seconds=1.0, max_trials=1), seed=0, metric="loss")


def test_space_must_name_parameters_of_the_model() -> None:
    with pytest.raises(ValueError, match=r"\['depth'\] are not parameters of the model"):
        check_space((integer("depth", 1, 3),), accepted=["lr", "C"])


def test_bad_budget_and_bad_default_are_errors() -> None:
    with pytest.raises(ValueError, match="max_trials >= 1"):
        Budget(seconds=1.0, max_trials=0)
    with pytest.raises(ValueError, match=r"'layers'.*not one of"):
        tune(
            "bowl",
            bowl,
            SPACE,
            Budget(1.0, 1),
            0,
            metric="loss",
            defaults={"x": 0, "n": 1, "layers": (4,)},
        )


def test_failed_trials_are_recorded_and_all_failing_is_an_error() -> None:
    def flaky(params: dict[str, Any]) -> float:
        if params["n"] > 4:
            raise RuntimeError("diverged")
        return bowl(params)

    result = tune("flaky", flaky, SPACE, Budget(60.0, 8), seed=1, metric="loss")
    failed = [t for t in result.trials if t.value is None]
    assert all(t.params["n"] > 4 for t in failed)
    assert result.best_params["n"] <= 4

    def broken(params: dict[str, Any]) -> float:
        raise RuntimeError("no data")

    with pytest.raises(RuntimeError, match=r"every trial failed.*no data"):
        tune("broken", broken, SPACE, Budget(60.0, 2), seed=1, metric="loss")


def test_report_renders_one_row_per_model() -> None:
    result = tune("bowl", bowl, SPACE, Budget(60.0, 2), seed=0, metric="loss")
    bp = Blueprint("t")
    bp.section("Models")
    report_tuning(bp, {"a": result, "b": result})
    text = bp.to_markdown()
    assert "| a | 2 |" in text and "| b | 2 |" in text and "validation loss, best" in text


def test_optuna_is_imported_only_when_a_study_runs() -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "import mlsd.tuning\n"
        "from mlsd.systems.ad_click.system import PIPELINE\n"
        "print(','.join(sorted(m for m in sys.modules if m.split('.')[0] == 'optuna')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "", f"importing the pipeline imports {out.stdout.strip()}"
