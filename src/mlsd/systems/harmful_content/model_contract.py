"""Each learned harmful-content model under the contract of :mod:`mlsd.contracts` (fit,
predict, save, load), on small synthetic data; :func:`contract_cases` is re-exported by
:mod:`.model`, where ``tests/contract`` looks for it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from mlsd.contracts import ModelCase
from mlsd.rng import rng
from mlsd.systems.harmful_content.model_fusion import HarmClassifier
from mlsd.systems.harmful_content.model_image import ImageCNN
from mlsd.systems.harmful_content.model_text import KeywordRule, TfidfLogistic, text_branch


def _multilabel_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = rng(0, "harmful-content/contract")
    X = r.normal(size=(600, 12)).astype(np.float32)
    z = np.stack([2 * X[:, 0] - 3, X[:, 1] + X[:, 2] - 2, -X[:, 3] - 2.5], axis=1)
    Y = (r.random(z.shape) < 1 / (1 + np.exp(-z))).astype(np.int64)
    return X, Y, X[:200]


def _text_data() -> tuple[list[str], np.ndarray, list[str]]:
    r = rng(0, "harmful-content/contract-text")
    words = ["cat", "dog", "rain", "sun", "free", "money", "kill", "now", "here"]
    texts = [" ".join(words[int(i)] for i in r.integers(0, len(words), 6)) for _ in range(300)]
    Y = np.stack([[("free money" in t or "money" in t), ("kill" in t)] for t in texts]).astype(
        np.int64
    )
    return texts, Y, texts[:100]


def _image_data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r = rng(0, "harmful-content/contract-images")
    images = r.integers(0, 255, (120, 8, 8, 3)).astype(np.uint8)
    Y = np.stack(
        [
            images[:, :4, :4, 0].mean(axis=(1, 2)) > 128,
            images[:, 4:, 4:, 1].mean(axis=(1, 2)) > 128,
        ],
        axis=1,
    )
    return images, Y.astype(np.int64), images[:40]


def _case(name: str, make: Callable[[int], Any], data: Callable[[], Any]) -> ModelCase:
    return ModelCase(
        name=name,
        kind="classifier",
        make=make,
        data=data,
        fit=lambda m, d: m.fit(d[0], d[1]),
        output=lambda m, d: np.asarray(m.predict_proba(d[2])),
        shape=lambda m, d: (len(d[2]), d[1].shape[1]),
        save=lambda m, path: m.save(path),
        load=lambda path: make(0).load(path),
        atol=1e-6,
    )


def contract_cases() -> list[ModelCase]:
    return [
        _case("harmful_keyword_rule", lambda s: KeywordRule(min_count=2), _text_data),
        _case("harmful_tfidf_lr", lambda s: TfidfLogistic(), _text_data),
        _case("harmful_text_branch", lambda s: text_branch(), _text_data),
        _case(
            "harmful_multi_task",
            lambda s: HarmClassifier(hidden=(16,), epochs=3, random_state=s, wide=True),
            _multilabel_data,
        ),
        _case(
            "harmful_single_task",
            lambda s: HarmClassifier(
                mode="single_task", loss="focal", hidden=(8,), epochs=3, random_state=s
            ),
            _multilabel_data,
        ),
        _case(
            "harmful_image_cnn", lambda s: ImageCNN(width=4, epochs=2, random_state=s), _image_data
        ),
    ]
