"""Every choice on the validation days: test-day labels cannot move the served model, a
hyper-parameter or a tree count; the test days are scored once, after the choice."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from mlsd.rng import rng
from mlsd.systems.event_rec.evaluation import EvalSet, build_eval_set, compute_offline
from mlsd.systems.event_rec.features import (
    Platform,
    TrainingData,
    daily_states,
    impression_features,
)
from mlsd.systems.event_rec.model import (
    LIGHTGBM,
    MODELS,
    LambdaRank,
    score,
    staged_scores,
    use_trees,
)
from mlsd.systems.event_rec.model_selection import (
    BASE_VARIANT,
    LAMBDARANK_VARIANTS,
    TrainedModels,
    select_models,
)
from mlsd.systems.event_rec.world import EventRecWorld
from mlsd.systems.event_rec.world_config import EventWorldConfig
from mlsd.world import Scale

CFG = EventWorldConfig.for_scale(Scale.TINY).with_(
    n_days=7, val_days=2, test_days=2, ab_days=1, eval_sessions=120
)
TREES = 20


@pytest.fixture(scope="module")
def setup() -> tuple[TrainingData, EvalSet, EvalSet]:
    w = EventRecWorld(Scale.TINY, 0, CFG)
    lg = w.log()
    platform = Platform(w.users, w.events.drop(columns=["tag"]), w.hoods)
    days = list(range(CFG.n_days))
    states = daily_states(platform, lg, days, CFG.n_hosts, w.friends, w.follows, CFG.n_slots)
    imp = lg.impressions
    reg = imp["register"].to_numpy(np.int64)
    data = TrainingData(
        X=impression_features(platform, states, imp),
        y=reg,
        grade=np.where(reg > 0, 2, (imp["click"].to_numpy() > 0).astype(np.int64)),
        session=imp["session_id"].to_numpy(np.int64),
        day=imp["day"].to_numpy(np.int64),
        p_true=imp["p_true"].to_numpy(np.float64),
        train_days=CFG.train_days,
        val_days=CFG.validation_days,
        test_days=CFG.testing_days,
    )
    val = build_eval_set(w, platform, lg, list(data.val_days), 0, purpose="validation")
    test = build_eval_set(w, platform, lg, list(data.test_days), 0)
    return data, val, test


@pytest.fixture(scope="module")
def chosen(setup: tuple) -> TrainedModels:
    data, val, _test = setup
    return select_models(data, val, 0, TREES)


def _permuted_test_labels(data: TrainingData) -> TrainingData:
    test = np.isin(data.day, data.test_days)
    order = rng(0, "test/permute").permutation(int(test.sum()))
    y, grade = data.y.copy(), data.grade.copy()
    y[test], grade[test] = data.y[test][order], data.grade[test][order]
    assert (y[test] != data.y[test]).any()  # the permutation moved labels
    return replace(data, y=y, grade=grade)


def test_the_days_split_in_time_order_without_overlap() -> None:
    assert CFG.train_days == (0, 1, 2)
    assert CFG.validation_days == (3, 4) and CFG.testing_days == (5, 6)


def test_permuting_test_labels_leaves_every_choice_unchanged(
    setup: tuple, chosen: TrainedModels
) -> None:
    data, val, _test = setup
    a = chosen
    b = select_models(_permuted_test_labels(data), val, 0, TREES)
    assert a.chosen == b.chosen and a.chosen in MODELS
    assert a.params == b.params
    assert a.trials == b.trials  # every validation score, to the last bit
    assert a.validation == b.validation
    # the refits read the training + validation days only: the same scores anywhere
    Xv = val.X.iloc[:500]
    for name in MODELS:
        assert np.array_equal(score(a.models[name], Xv), score(b.models[name], Xv)), name


def test_validation_labels_do_move_the_choice(setup: tuple) -> None:
    """The converse, so the test above could fail: flipped validation labels change scores."""
    data, val, _test = setup
    narrow = {"leaves_grid": (7,), "variants": {BASE_VARIANT: {}}}
    a = select_models(data, val, 0, TREES, **narrow)
    b = select_models(data, replace(val, y=1 - val.y), 0, TREES, **narrow)
    assert a.trials != b.trials


def test_the_test_days_choose_nothing(setup: tuple, chosen: TrainedModels) -> None:
    data, _val, test = setup
    order = rng(0, "test/permute-eval").permutation(len(test.y))
    shuffled = replace(test, y=test.y[order])
    one = compute_offline(chosen.models, chosen.chosen, test, {})
    two = compute_offline(chosen.models, chosen.chosen, shuffled, {})
    assert one.best == two.best == chosen.chosen
    assert one.scores[chosen.chosen]["ndcg@10"] != two.scores[chosen.chosen]["ndcg@10"]
    with pytest.raises(ValueError, match="validation days only"):
        select_models(data, test, 0, TREES)


def test_every_lambdarank_variant_and_tree_count_is_tried(chosen: TrainedModels) -> None:
    res = chosen
    settings = {t["setting"].split(", leaves=")[0] for t in res.trials}
    assert set(LAMBDARANK_VARIANTS) <= settings
    for name in LIGHTGBM:
        assert 0 < res.params[name]["n_estimators"] <= TREES
        assert res.models[name].best_iteration_ == res.params[name]["n_estimators"]
    d = res.metrics()
    assert d["selection"]["chosen_on"] == "validation" and d["selection"]["max_trees"] == TREES
    assert res.capped == [n for n in LIGHTGBM if res.params[n]["n_estimators"] == TREES]
    assert set(d["selection"]["lambdarank_vs_pointwise_validation"]) == {"ndcg@10", "map@10"}


def test_staged_scores_end_at_the_full_model(setup: tuple) -> None:
    data, _val, _test = setup
    X = data.X.iloc[:2000]
    m = LambdaRank(n_estimators=12, num_leaves=7).fit(X, data.y[:2000], data.session[:2000])
    staged = staged_scores(m, X, 5)
    assert [n for n, _ in staged] == [5, 10, 12]
    full = m.score(X.assign(d_position=0.0))
    assert np.allclose(staged[-1][1], full)
    use_trees(m, 5)
    assert np.allclose(m.score(X.assign(d_position=0.0)), staged[0][1])


def test_graded_lambdarank_checks_its_grades(setup: tuple) -> None:
    data, _val, _test = setup
    X = data.X.iloc[:300]
    with pytest.raises(ValueError, match="0/1/2"):
        LambdaRank(n_estimators=2, graded=True).fit(X, np.full(300, 3), data.session[:300])
