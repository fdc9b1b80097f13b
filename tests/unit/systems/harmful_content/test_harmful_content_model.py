"""The harmful-content models: the keyword rule, TF-IDF, the fusion networks, late fusion."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.rng import rng
from mlsd.systems.harmful_content.model import LateFusion
from mlsd.systems.harmful_content.model_fusion import HarmClassifier, check_labels
from mlsd.systems.harmful_content.model_image import ImageCNN
from mlsd.systems.harmful_content.model_text import KeywordRule, TfidfLogistic


def test_keyword_rule_matches_whole_phrases() -> None:
    rule = KeywordRule(blocklist=(("free money",), ("kill",))).fit(["a", "b"], np.zeros((2, 2)))
    p = rule.predict_proba(["get FREE money now", "skill issue", "kill kill", "fr3e money"])
    np.testing.assert_allclose(p, [[0.5, 0], [0, 0], [0, 0.5], [0, 0]])


def test_keyword_rule_learns_a_blocklist() -> None:
    texts = ["buy cheap pills", "cheap pills here", "nice cat", "cheap cat", "pills cheap"] * 3
    Y = np.array([[int("pills" in t)] for t in texts])
    rule = KeywordRule(min_count=2, min_precision=0.9).fit(texts, Y)
    assert rule.phrases_[0][0] == "pills"  # the most frequent precise word first
    assert "cheap" not in rule.phrases_[0] and "cat" not in rule.phrases_[0]


def test_tfidf_logistic_ranks_the_harmful_texts_first() -> None:
    r = rng(0, "test/tfidf")
    words = ["cat", "dog", "sun", "rain", "tea", "book"]
    texts = [
        " ".join(r.choice(words, 5)) + (" scam link" if i % 7 == 0 else "") for i in range(300)
    ]
    Y = np.array([[int(i % 7 == 0)] for i in range(300)])
    p = TfidfLogistic().fit(texts, Y).predict_proba(["cat scam link", "cat dog sun"])
    assert p[0, 0] > 0.5 > p[1, 0]


@pytest.mark.parametrize(("mode", "loss"), [("multi_task", "weighted"), ("single_task", "focal")])
def test_fusion_network_learns_each_class(mode: str, loss: str) -> None:
    r = rng(1, "test/fusion")
    X = r.normal(size=(800, 6)).astype(np.float32)
    Y = np.stack([X[:, 0] > 1.0, X[:, 1] < -1.0], axis=1).astype(np.int64)
    model = HarmClassifier(mode=mode, loss=loss, hidden=(16,), epochs=15, batch_size=64, lr=1e-2)
    model.fit(X, Y)
    p = model.predict_proba(X)
    assert p.shape == (800, 2) and ((p >= 0) & (p <= 1)).all()
    for c in range(2):
        assert p[Y[:, c] == 1, c].mean() > p[Y[:, c] == 0, c].mean() + 0.3
    nets = len(model.network_.nets)
    assert nets == (1 if mode == "multi_task" else 2)


def test_labels_must_be_zero_or_one() -> None:
    with pytest.raises(ValueError, match="row 1"):
        check_labels(np.zeros((3, 2)), np.array([[0, 1], [2, 0], [0, 0]]))
    with pytest.raises(ValueError, match="shape"):
        check_labels(np.zeros((3, 2)), np.zeros(3))


def test_image_cnn_embeds_and_scores() -> None:
    r = rng(2, "test/cnn")
    images = r.integers(0, 255, (64, 8, 8, 3)).astype(np.uint8)
    Y = (images[:, :, :, 0].mean(axis=(1, 2)) > 127).astype(np.int64)[:, None]
    cnn = ImageCNN(width=4, epochs=2).fit(images, Y)
    assert cnn.embed(images).shape == (64, 8)
    assert cnn.predict_proba(images).shape == (64, 1)


def test_late_fusion_uses_the_image_only_where_there_is_one() -> None:
    r = rng(3, "test/late")
    n = 600
    y = (r.random(n) < 0.2).astype(np.int64)
    has = r.random(n) < 0.5
    text = y * 2.0 + r.normal(size=n)
    img = np.where(has, y * 3.0 + r.normal(size=n), 0.0)
    logits = [text[:, None], img[:, None], np.zeros((n, 1))]
    fused = LateFusion().fit(logits, has, y[:, None])
    p = fused.predict_proba(logits, has)[:, 0]
    assert p[y == 1].mean() > p[y == 0].mean() + 0.3
    assert fused.coef_[0, 1] > 0  # the image logit counts


def test_cross_fitted_lexical_logits_do_not_leak_the_labels() -> None:
    from mlsd.systems.harmful_content.model import cross_fitted_lex, lexical_logits

    r = rng(4, "test/lex")
    texts = [f"word{i} filler" for i in range(300)]  # every text its own word: memorisable
    Y = (r.random((300, 1)) < 0.3).astype(np.int64)  # labels unrelated to any shared word
    inside = lexical_logits(TfidfLogistic(min_df=1).fit(texts, Y), texts)[:, 0]
    oof = cross_fitted_lex(texts, Y, seed=0)[:, 0]
    gap_inside = inside[Y[:, 0] == 1].mean() - inside[Y[:, 0] == 0].mean()
    gap_oof = oof[Y[:, 0] == 1].mean() - oof[Y[:, 0] == 0].mean()
    assert gap_inside > 1.0  # fitted on the rows it scores: it memorised them
    assert abs(gap_oof) < 0.3  # cross-fitted: nothing to memorise
