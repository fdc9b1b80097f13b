"""The fused models' inputs: the time cut of the engagement features, the obfuscation-aware
text branch, the image descriptors, the wide path of the fusion network, the drift counts."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from mlsd.comparisons import compare_ratios, minimum_detectable_effect
from mlsd.monitoring_signals import count_alerts
from mlsd.rng import rng
from mlsd.systems.harmful_content.features import META_COLUMNS, post_meta
from mlsd.systems.harmful_content.model_fusion import HarmClassifier, MultiLabelNet
from mlsd.systems.harmful_content.model_image import N_DESCRIPTORS, image_descriptors
from mlsd.systems.harmful_content.model_text import TfidfLogistic, normalize_text
from mlsd.systems.harmful_content.world import HarmWorld
from mlsd.systems.harmful_content.world_config import HarmWorldConfig
from mlsd.systems.harmful_content.world_images import render_image
from mlsd.world import Scale

LATE = ("views_total", "report_rate", "reports_total", "report_reason", "kind", "channel")


def test_the_features_are_cut_at_the_decision_hour() -> None:
    """Everything the world learns after the first hour (total views, late reports, the
    truth) can change without changing a feature: no late report leaks into the models."""
    cfg = HarmWorldConfig.for_scale(Scale.TINY).with_(n_posts=800, n_authors=100)
    posts = HarmWorld(Scale.TINY, 5, cfg).posts
    before = post_meta(posts)
    changed = posts.copy()
    r = np.random.default_rng(0)
    for col in LATE:
        changed[col] = r.permutation(changed[col].to_numpy())
    for col in [c for c in posts.columns if c.startswith(("y_", "p_"))]:
        changed[col] = 1 - changed[col]
    np.testing.assert_array_equal(post_meta(changed), before)
    # and the first hour's counts are part of the totals, not the totals themselves
    assert (posts["reports_1h"] <= posts["reports_total"]).all()
    assert (posts["views_1h"] <= posts["views_total"] * 1.0 + 50).all()
    assert before.shape == (len(posts), len(META_COLUMNS))


def test_normalize_text_undoes_leetspeak_and_spacing() -> None:
    assert normalize_text("K1ll them at the 5ch00l") == "kill them at the school"
    assert normalize_text("go e n d it all") == "go end it all"
    assert normalize_text("e n d i t a l l") == "enditall"
    assert normalize_text("a b fine") == "a b fine"  # two letters are not a spaced word


def test_the_text_branch_sees_through_obfuscation() -> None:
    r = rng(0, "test/text-branch")
    words = ["cat", "dog", "sun", "rain", "tea", "book", "park", "bread"]
    texts, labels = [], []
    for i in range(400):
        base = " ".join(r.choice(words, 5))
        harmful = i % 8 == 0
        texts.append(base + (" overdose" if harmful else ""))
        labels.append([int(harmful)])
    Y = np.array(labels)
    probes = ["cat dog 0v3rd0s3", "cat dog o v e r d o s e", "cat dog overdosse", "cat dog sun"]
    plain = TfidfLogistic().fit(texts, Y).predict_proba(probes)[:, 0]
    branch = TfidfLogistic(char=True, normalize=True).fit(texts, Y).predict_proba(probes)[:, 0]
    assert (branch[:3] > 0.5).all() and branch[3] < 0.2
    assert (plain[:3] < 0.5).all()  # word n-grams alone never saw these spellings


def test_text_branch_saves_and_loads(tmp_path: object) -> None:
    from pathlib import Path

    texts = ["free money now", "nice cat", "fr33 money", "good dog"] * 5
    Y = np.array([[1], [0], [1], [0]] * 5)
    model = TfidfLogistic(char=True, normalize=True, min_df=1).fit(texts, Y)
    path = Path(str(tmp_path)) / "branch"
    model.save(path)
    loaded = TfidfLogistic().load(path)
    np.testing.assert_allclose(loaded.predict_proba(texts), model.predict_proba(texts))


def test_image_descriptors_carry_the_glyph() -> None:
    size = 32
    blank = np.stack([render_image(-1, 0.0, 0, i, size) for i in range(20)])
    red = np.stack([render_image(1, 2.5, 0, i, size) for i in range(20)])  # violence: red
    d_blank, d_red = image_descriptors(blank), image_descriptors(red)
    assert d_blank.shape == (20, N_DESCRIPTORS) and d_blank.dtype == np.float32
    np.testing.assert_array_equal(image_descriptors(blank), d_blank)  # deterministic
    # the colour cell of saturated red (high R, low G and B) fills up
    red_cell = (3 * 4 + 0) * 4 + 0
    assert d_red[:, red_cell].mean() > d_blank[:, red_cell].mean() + 0.1
    with pytest.raises(ValueError, match="images must be"):
        image_descriptors(np.zeros((2, 8, 8)))


def test_the_wide_path_starts_at_zero_and_learns() -> None:
    net = MultiLabelNet(4, (8,), 2, 1, wide=True).eval()
    assert net.wide is not None and float(net.wide.weight.detach().abs().sum()) == 0.0
    x = torch.randn(5, 4)
    with torch.no_grad():
        torch.testing.assert_close(net(x), torch.cat([n(x) for n in net.nets], dim=1))
    r = rng(2, "test/wide")
    X = r.normal(size=(600, 5)).astype(np.float32)
    Y = (X[:, [0]] > 1.2).astype(np.int64)
    model = HarmClassifier(hidden=(4,), epochs=8, lr=1e-2, wide=True).fit(X, Y)
    p = model.predict_proba(X)[:, 0]
    assert p[Y[:, 0] == 1].mean() > p[Y[:, 0] == 0].mean() + 0.2
    assert float(model.network_.wide.weight.detach().abs().sum()) > 0


def test_count_alerts_threshold_comes_from_the_reference_noise() -> None:
    daily = pd.DataFrame(
        {"day": [1, 2, 3, 4], "posts": [1000.0] * 4, "unseen": [3.0, 6.0, 11.0, 25.0]}
    )
    alerts = count_alerts(daily, "unseen", "posts", 12.0, 4000.0, alpha=1e-3)
    assert [a.day for a in alerts] == [3, 4]  # expected 3 a day: 6 is noise, 11 is not
    assert all(a.kind == "feature_drift" and a.threshold == 11.0 for a in alerts)
    with pytest.raises(KeyError, match="posts"):
        count_alerts(daily.drop(columns="posts"), "unseen", "posts", 1.0, 1.0)


def test_minimum_detectable_effect_shrinks_with_traffic() -> None:
    r = np.random.default_rng(1)

    def mde(n: int) -> float:
        den_c, den_t = r.poisson(20, n) + 1.0, r.poisson(20, n) + 1.0
        num_c, num_t = r.binomial(den_c.astype(int), 0.1), r.binomial(den_t.astype(int), 0.1)
        return minimum_detectable_effect(compare_ratios(num_c, den_c, num_t, den_t), 0.8)

    small, large = mde(500), mde(8000)
    assert 0 < large < small
    assert large == pytest.approx(small / 4, rel=0.25)  # 16x the units: a quarter of the MDE
