"""Step 4: the models side by side, every one scoring a post's harm classes ``(n, C)``.

The line-up, from no ML to the chapter's design:

* ``keyword_rule`` (no ML, :class:`~.model_text.KeywordRule`) and ``tfidf_lr`` (TF-IDF +
  logistic regression): the text baselines; ``tfidf_char_lr`` (:func:`text_branch`: word and
  character n-grams of the normalised text) is the fused networks' text branch;
* one model per modality: ``text_mlp`` (MiniLM embedding -> MLP), ``image_cnn`` (the CNN's own
  heads; a post without an image gets the class prior), ``author_lr`` (author and first-hour
  engagement features -> logistic regression);
* ``late_fusion``: the three modality models' logits combined per class by a logistic
  regression (:class:`LateFusion`);
* early fusion: the concatenated representations (the text branch's cross-fitted logits, alone
  and where there is an image; the image's CNN logits and their product with the text's; the
  image descriptors; author and engagement: :meth:`Reps.early`) into one network:
  ``early_single_task`` (one network per class), ``early_multi_task`` (a shared trunk, a head
  per class, and a linear path from every input to every head; positives re-weighted),
  ``early_multi_task_bce`` (no imbalance handling) and ``early_multi_task_focal`` (focal loss).

:func:`contract_cases` puts each learned model under the contract of :mod:`mlsd.contracts`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.linear_model import LogisticRegression

from mlsd.engine import Engine, LocalEngine
from mlsd.model_io import SavedAsData
from mlsd.report import Blueprint
from mlsd.rng import rng, seed_of
from mlsd.systems.harmful_content.model_contract import contract_cases as contract_cases
from mlsd.systems.harmful_content.model_fusion import HarmClassifier, check_labels
from mlsd.systems.harmful_content.model_image import N_DESCRIPTORS, ImageCNN, image_descriptors
from mlsd.systems.harmful_content.model_text import KeywordRule, TfidfLogistic, text_branch

log = logging.getLogger(__name__)

BASELINE = "tfidf_lr"
PROPOSED = "early_multi_task"
LEX_MODEL = "tfidf_char_lr"  # the text branch whose logits the networks read
TEXT_ONLY = ("keyword_rule", "tfidf_lr", LEX_MODEL, "text_mlp")
MODALITY = ("text_mlp", "image_cnn", "author_lr")
EARLY = ("early_single_task", "early_multi_task", "early_multi_task_bce", "early_multi_task_focal")
MODELS = ("keyword_rule", "tfidf_lr", LEX_MODEL, *MODALITY[:], "late_fusion", *EARLY)
# the models that see every modality: what may be served
SERVABLE = ("late_fusion", *EARLY)


@dataclass(frozen=True)
class Reps:
    """The representations of a set of posts (rows aligned): what every model reads."""

    texts: list[str]
    text_emb: np.ndarray  # (n, 384)
    img_emb: np.ndarray  # (n, 32): the CNN's pooled features, 0 without an image
    img_logits: np.ndarray  # (n, C): the CNN's heads, nan without an image
    meta: np.ndarray  # (n, m): author and engagement
    lex: np.ndarray | None = None  # (n, C): the text branch's logits (cross-fitted on training)
    img_desc: np.ndarray | None = None  # (n, d): colour and gradient descriptors, 0 without

    def __len__(self) -> int:
        return len(self.texts)

    def text(self) -> np.ndarray:
        """The text representation: ``(n, 384 [+ C])``, the embedding and the lexical logits."""
        parts = [self.text_emb] if self.lex is None else [self.text_emb, self.lex]
        return np.concatenate(parts, axis=1).astype(np.float32)

    def has_image(self) -> np.ndarray:
        """``(n,)`` bool: the post carries an image."""
        if self.img_logits.size == 0:
            return np.zeros(len(self), bool)
        return np.asarray(~np.isnan(self.img_logits[:, 0]), bool)

    def early(self) -> np.ndarray:
        """The early-fusion input, ``(n, 4C + d + m)``: the text branch's logits, the same where
        the post has an image, the image's CNN logits (0 without one) and their product with
        the text's (a text's harm weighs differently beside a harmful-looking image: the memes),
        the image descriptors, author and engagement. Without the text branch (``lex`` None:
        labels it was not fitted on) the MiniLM embedding takes its place. The raw embeddings
        (MiniLM's 384, the CNN's 32) are left to the per-modality models: with a few hundred
        positives they overfit the network (validation mean PR-AUC 0.751 with MiniLM, 0.813
        without; the CNN's embedding 0.807)."""
        has = self.has_image()[:, None]
        img = np.where(has, np.nan_to_num(self.img_logits), 0.0)
        if self.lex is None:
            parts = [self.text_emb, img]
        else:
            parts = [self.lex, self.lex * has, img, self.lex * img]
        if self.img_desc is not None:
            parts.append(self.img_desc)
        parts.append(self.meta)
        return np.concatenate(parts, axis=1).astype(np.float32)

    def take(self, idx: np.ndarray) -> Reps:
        lex = None if self.lex is None else self.lex[idx]
        return Reps(
            [self.texts[int(i)] for i in idx],
            self.text_emb[idx],
            self.img_emb[idx],
            self.img_logits[idx],
            self.meta[idx],
            lex,
            None if self.img_desc is None else self.img_desc[idx],
        )


def lexical_logits(tfidf: TfidfLogistic, texts: list[str]) -> np.ndarray:
    """``(n, C)`` float32 logits of a fitted TF-IDF model: the text's lexical evidence."""
    return _logit(np.asarray(tfidf.predict_proba(texts))).astype(np.float32)


def cross_fitted_lex(texts: list[str], Y: np.ndarray, seed: int, folds: int = 3) -> np.ndarray:
    """Lexical logits of the training rows, each from a TF-IDF model that did not see it (a
    seeded k-fold), so the networks stacked on them do not learn from leaked labels."""
    fold = rng(seed, "harmful-content/lex-folds").integers(0, folds, len(texts))
    out = np.zeros(Y.shape, np.float32)
    for k in range(folds):
        held = np.flatnonzero(fold == k)
        fit = np.flatnonzero(fold != k)
        if not len(held):
            continue
        model = text_branch().fit([texts[int(i)] for i in fit], Y[fit])
        out[held] = lexical_logits(model, [texts[int(i)] for i in held])
    return out


def make_reps(
    texts: list[str],
    text_emb: np.ndarray,
    images: np.ndarray,
    has_image: np.ndarray,
    meta: np.ndarray,
    cnn: ImageCNN | None,
    n_classes: int,
    lex: np.ndarray | None = None,
    engine: Engine | None = None,
) -> Reps:
    """The posts' representations; the image model scores the image posts in blocks of
    :data:`IMAGE_BLOCK` (on ``engine``: the blocks in parallel, in row order)."""
    n = len(texts)
    if cnn is None:  # text only (a labelled file)
        return Reps(
            texts,
            text_emb,
            np.zeros((n, 0), np.float32),
            np.full((n, n_classes), np.nan),
            meta,
            lex,
        )
    emb = np.zeros((n, cnn.width * 2), np.float32)
    logits = np.full((n, n_classes), np.nan)
    desc = np.zeros((n, N_DESCRIPTORS), np.float32)
    rows = np.flatnonzero(has_image)
    if len(rows):
        for s in range(0, len(rows), IMAGE_BLOCK):
            desc[rows[s : s + IMAGE_BLOCK]] = image_descriptors(images[rows[s : s + IMAGE_BLOCK]])
        blocks = (images[rows[s : s + IMAGE_BLOCK]] for s in range(0, len(rows), IMAGE_BLOCK))
        done = (engine or LocalEngine()).map(score_images, blocks, shared=cnn)
        emb[rows] = np.concatenate([e for e, _ in done])
        logits[rows] = np.concatenate([lg for _, lg in done])
    return Reps(texts, text_emb, emb, logits, meta, lex, desc)


IMAGE_BLOCK = 4096  # images per shard of the batch classification


def score_images(cnn: ImageCNN, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One shard of the batch classification: the image model's embeddings and logits."""
    return cnn.embed(images), cnn.predict_logits(images)


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-7, 1 - 1e-7)
    return np.asarray(np.log(q / (1 - q)))


class LateFusion(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """Per class, a logistic regression over the modality models' logits (text, image, author);
    a post without an image has the image logit at the class's training prior and a flag."""

    def __init__(self, C: float = 1.0) -> None:
        self.C = C

    def _inputs(self, logits: list[np.ndarray], c: int, has_image: np.ndarray) -> np.ndarray:
        img = np.where(has_image, logits[1][:, c], self.prior_logit_[c])
        return np.stack([logits[0][:, c], img, logits[2][:, c], has_image.astype(float)], axis=1)

    def fit(self, logits: list[np.ndarray], has_image: np.ndarray, Y: np.ndarray) -> Self:
        y = check_labels(logits[0], Y)
        rate = np.clip(y.mean(axis=0), 1e-6, 1 - 1e-6)
        self.prior_logit_ = np.log(rate / (1 - rate))
        self.coef_ = np.zeros((y.shape[1], 4))
        self.intercept_ = self.prior_logit_.copy()
        for c in range(y.shape[1]):
            if y[:, c].min() == y[:, c].max():
                continue
            lr = LogisticRegression(C=self.C, max_iter=500)
            lr.fit(self._inputs(logits, c, has_image), y[:, c])
            self.coef_[c], self.intercept_[c] = lr.coef_[0], lr.intercept_[0]
        return self

    def predict_proba(self, logits: list[np.ndarray], has_image: np.ndarray) -> np.ndarray:
        out = np.empty((len(has_image), len(self.coef_)))
        for c in range(len(self.coef_)):
            z = self._inputs(logits, c, has_image) @ self.coef_[c] + self.intercept_[c]
            out[:, c] = expit(z)
        return out


@dataclass
class Lineup:
    """The fitted line-up: each model by name, the image CNN, and the keyword blocklist."""

    models: dict[str, Any]
    cnn: ImageCNN | None
    prior: np.ndarray  # (C,) training prevalence per class

    def modality_logits(self, reps: Reps) -> list[np.ndarray]:
        img = np.where(np.isnan(reps.img_logits), _logit(self.prior)[None, :], reps.img_logits)
        return [
            self.models["text_mlp"].predict_logits(reps.text()),
            img,
            self.models["author_lr"].predict_logits(reps.meta),
        ]

    def score(self, name: str, reps: Reps) -> np.ndarray:
        return score_model(name, self.models[name], reps, self)


def score_model(name: str, model: Any, reps: Reps, lineup: Lineup | None = None) -> np.ndarray:
    """``(n, C)`` probabilities of model ``name`` on ``reps``."""
    if name in ("keyword_rule", "tfidf_lr", LEX_MODEL):
        return np.asarray(model.predict_proba(reps.texts))
    if name == "text_mlp":
        return np.asarray(model.predict_proba(reps.text()))
    if name == "author_lr":
        return np.asarray(model.predict_proba(reps.meta))
    if name == "image_cnn":
        if lineup is None:
            raise ValueError("image_cnn scores need the line-up's prior")
        z = np.where(np.isnan(reps.img_logits), _logit(lineup.prior)[None, :], reps.img_logits)
        return np.asarray(expit(z))
    if name == "late_fusion":
        if lineup is None:
            raise ValueError("late fusion needs the line-up's modality models")
        has = (
            ~np.isnan(reps.img_logits[:, 0]) if reps.img_logits.size else np.zeros(len(reps), bool)
        )
        return np.asarray(model.predict_proba(lineup.modality_logits(reps), has))
    return np.asarray(model.predict_proba(reps.early()))


def make_classifier(name: str, seed: int, threads: int = 1, epochs: int = 12) -> HarmClassifier:
    s = seed_of(seed, f"harmful-content/{name}")
    if name == "text_mlp":
        return HarmClassifier(
            loss="bce", hidden=(128,), epochs=epochs, random_state=s, num_threads=threads
        )
    if name == "author_lr":
        return HarmClassifier(
            loss="bce", hidden=(), epochs=epochs, lr=3e-3, random_state=s, num_threads=threads
        )
    loss = {"early_multi_task_bce": "bce", "early_multi_task_focal": "focal"}.get(name, "weighted")
    mode = "single_task" if name == "early_single_task" else "multi_task"
    # a shared trunk of 64 units plus a linear path from every input to every head (wide &
    # deep): with a few hundred positives the main effects of the text branch and the image
    # should not have to pass through hidden units; weight decay 1e-3 (validation mean PR-AUC
    # 0.813, vs 0.775 with a (128, 64) trunk and 1e-5)
    return HarmClassifier(
        mode=mode,
        loss=loss,
        hidden=(32,) if mode == "single_task" else (64,),
        epochs=epochs,
        weight_decay=1e-3,
        random_state=s,
        num_threads=threads,
        wide=mode == "multi_task",
    )


@dataclass(frozen=True)
class TrainedModels:
    lineup: Lineup
    train_seconds: dict[str, float]
    parameters: dict[str, int]
    rows: int
    label_source: str

    def metrics(self) -> dict[str, Any]:
        return {
            "models": {
                n: {"train_seconds": round(s, 3), "parameters": self.parameters.get(n, 0)}
                for n, s in self.train_seconds.items()
            }
        }


def train_lineup(
    reps: Reps,
    Y: np.ndarray,
    cnn: ImageCNN | None,
    seed: int,
    blocklist: tuple[tuple[str, ...], ...] | None,
    names: tuple[str, ...] = MODELS,
    threads: int = 1,
    cnn_seconds: float = 0.0,
    progress: Callable[[str, float, float], None] | None = None,
    epochs: int = 12,
    tfidf: TfidfLogistic | None = None,
    lex_model: TfidfLogistic | None = None,
) -> TrainedModels:
    """Fit the models in ``names`` (in order: late fusion needs the modality models first);
    ``tfidf`` / ``lex_model``: the baseline and the text branch, when already fitted."""
    y = check_labels(reps.meta, Y)
    lineup = Lineup({}, cnn, np.clip(y.mean(axis=0), 1e-6, 1 - 1e-6))
    seconds: dict[str, float] = {}
    params: dict[str, int] = {}
    for i, name in enumerate(names):
        if progress is not None:
            progress(f"fitting {name}", i, len(names))
        t0 = time.perf_counter()
        if name == "keyword_rule":
            model: Any = KeywordRule(blocklist=blocklist).fit(reps.texts, y)
        elif name == "tfidf_lr":
            model = tfidf if tfidf is not None else TfidfLogistic().fit(reps.texts, y)
            params[name] = int(model.coef_.size + model.intercept_.size)
        elif name == LEX_MODEL:
            model = lex_model if lex_model is not None else text_branch().fit(reps.texts, y)
            params[name] = int(model.coef_.size + model.intercept_.size)
        elif name == "image_cnn":
            if cnn is None:
                continue
            model = cnn
            params[name] = int(sum(p.numel() for p in cnn.network_.parameters()))
        elif name == "late_fusion":
            has = ~np.isnan(reps.img_logits[:, 0])
            model = LateFusion().fit(lineup.modality_logits(reps), has, y)
            params[name] = int(model.coef_.size)
        else:
            X = (
                reps.text()
                if name == "text_mlp"
                else reps.meta
                if name == "author_lr"
                else reps.early()
            )
            model = make_classifier(name, seed, threads, epochs).fit(X, y)
            params[name] = model.n_parameters
        lineup.models[name] = model
        seconds[name] = time.perf_counter() - t0 + (cnn_seconds if name == "image_cnn" else 0.0)
        log.info("harmful-content: fitted %s in %.1f s", name, seconds[name])
    return TrainedModels(lineup, seconds, params, len(y), "hand labels")


def report_models(bp: Blueprint, result: TrainedModels) -> None:
    bp.text(
        "The line-up, from no ML to the chapter's design: a **keyword blocklist**, **TF-IDF + "
        "logistic regression**, one model per modality (**text MLP** on the MiniLM embedding, "
        "the **image CNN**, **author + engagement** logistic regression), **late fusion** (the "
        "three modality models' logits combined per class by a logistic regression) and **early "
        "fusion** (the concatenated representations into one network): one network per class "
        "(single-task) or a shared trunk with a head per class plus a linear path from every "
        "input (multi-task, wide & deep), with positives re-weighted, plain BCE, or the focal "
        "loss. The networks' text branch is **tfidf_char_lr** (word and character n-grams of "
        "the text with leetspeak and spaced letters undone, cross-fitted on the training posts); "
        "their image branch is the CNN's logits, their product with the text's (memes), and "
        "colour and gradient histograms; MiniLM's 384 dimensions stay with the text MLP (in "
        "the network they overfit the few positives). Trained on "
        f"{result.rows:,} posts of the training days ({result.label_source})."
    )
    bp.table(
        ["model", "train seconds", "parameters"],
        [[n, round(s, 2), result.parameters.get(n, 0)] for n, s in result.train_seconds.items()],
    )
