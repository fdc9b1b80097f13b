"""The text-only baselines: a keyword blocklist (no ML) and TF-IDF + logistic regression.

* :class:`KeywordRule`: a post is flagged for a class when it contains a phrase of the class's
  blocklist; the score is ``1 - 0.5^matches``. In the world the blocklist is the policy team's
  list of explicit phrases; on a labelled file it is learned (the training words most precise
  for the class), as a team would write one from reviewed examples.
* :class:`TfidfLogistic`: word uni- and bigram TF-IDF and one logistic regression per class,
  saved as data (the vocabulary, the IDF weights and the coefficients). With ``char`` it adds
  character 2-5-grams inside word boundaries (a misspelt or spaced-out word still shares most of
  its n-grams with the word), and with ``normalize`` it reads :func:`normalize_text`: the text
  branch of the fused models.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from typing import Self

import numpy as np
from scipy import sparse
from scipy.special import expit
from sklearn.base import BaseEstimator
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from mlsd.model_io import SavedAsData
from mlsd.systems.harmful_content.model_fusion import check_labels

_WORD = re.compile(r"[a-z0-9$']+")
_SPACED = re.compile(r"\b(?:\w ){2,}\w\b")  # "k i l l": three or more letters, one apart
_UNLEET = str.maketrans({"4": "a", "3": "e", "1": "i", "0": "o", "5": "s", "@": "a"})


def tokens(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def normalize_text(text: str) -> str:
    """Lower case, leetspeak digits back to letters, spaced-out letters joined: the usual
    first pass of a moderation text pipeline against obfuscation ("k 1 l l" -> "kill")."""
    t = str(text).lower().translate(_UNLEET)
    return _SPACED.sub(lambda m: m.group(0).replace(" ", ""), t)


class KeywordRule(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """Blocklist matching; ``blocklist`` None learns one list per class in :meth:`fit`."""

    def __init__(
        self,
        blocklist: tuple[tuple[str, ...], ...] | None = None,
        min_count: int = 3,
        min_precision: float = 0.5,
        max_words: int = 25,
    ) -> None:
        self.blocklist = blocklist
        self.min_count = min_count
        self.min_precision = min_precision
        self.max_words = max_words

    def fit(self, texts: Sequence[str], Y: np.ndarray) -> Self:
        y = check_labels(np.empty(len(texts)), Y)
        if self.blocklist is not None:
            self.phrases_ = [list(p) for p in self.blocklist]
            return self
        seen = [set(tokens(t)) for t in texts]
        total: Counter[str] = Counter(w for s in seen for w in s)
        lists = []
        for c in range(y.shape[1]):
            pos: Counter[str] = Counter(
                w for s, yc in zip(seen, y[:, c], strict=True) if yc for w in s
            )
            good = [
                (n, w)
                for w, n in pos.items()
                if n >= self.min_count and n / total[w] >= self.min_precision
            ]
            lists.append([w for _, w in sorted(good, reverse=True)[: self.max_words]])
        self.phrases_ = lists
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.phrases_)))
        padded = [" " + " ".join(tokens(t)) + " " for t in texts]
        for c, phrases in enumerate(self.phrases_):
            pats = [" " + " ".join(tokens(p)) + " " for p in phrases]
            counts = np.array([sum(p in t for p in pats) for t in padded], np.float64)
            out[:, c] = 1.0 - 0.5**counts
        return out


class TfidfLogistic(SavedAsData, BaseEstimator):  # type: ignore[misc]
    """TF-IDF (word 1-2-grams, and character 2-5-grams with ``char``) and a logistic
    regression per class."""

    def __init__(
        self,
        C: float = 4.0,
        min_df: int = 2,
        max_features: int = 50_000,
        char: bool = False,
        normalize: bool = False,
    ) -> None:
        self.C = C
        self.min_df = min_df
        self.max_features = max_features
        self.char = char
        self.normalize = normalize

    def _texts(self, texts: Sequence[str]) -> list[str]:
        return [normalize_text(t) if self.normalize else str(t) for t in texts]

    def _char_vectorizer(self, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
        return TfidfVectorizer(
            analyzer="char_wb",
            ngram_range=(2, 5),
            min_df=1 if vocabulary is not None else self.min_df,
            max_features=None if vocabulary is not None else 2 * self.max_features,
            sublinear_tf=True,
            vocabulary=vocabulary,
        )

    def _vectorizer(self, vocabulary: dict[str, int] | None = None) -> TfidfVectorizer:
        return TfidfVectorizer(
            ngram_range=(1, 2),
            min_df=1 if vocabulary is not None else self.min_df,
            max_features=None if vocabulary is not None else self.max_features,
            sublinear_tf=True,
            vocabulary=vocabulary,
            token_pattern=_WORD.pattern,
        )

    def _transform(self, texts: Sequence[str]) -> sparse.csr_matrix:
        """Each distinct text is vectorised once (posts copy text)."""
        distinct, inverse = np.unique(
            np.array(self._texts(texts), dtype=object), return_inverse=True
        )
        vec = self._vectorizer({str(k): int(v) for k, v in self.vocabulary_.items()})
        vec.idf_ = self.idf_
        X = vec.transform(list(distinct))
        if self.char:
            cv = self._char_vectorizer({str(k): int(v) for k, v in self.char_vocabulary_.items()})
            cv.idf_ = self.char_idf_
            X = sparse.hstack([X, cv.transform(list(distinct))]).tocsr()
        return X[inverse]

    def fit(self, texts: Sequence[str], Y: np.ndarray) -> Self:
        y = check_labels(np.empty(len(texts)), Y)
        vec = self._vectorizer()
        docs = self._texts(texts)
        try:
            X = vec.fit_transform(docs)
        except ValueError:  # every text empty, or no word seen min_df times
            vec = self._vectorizer()
            vec.min_df = 1
            X = vec.fit_transform([t + " _empty_" for t in docs])
        self.vocabulary_ = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        self.idf_ = np.asarray(vec.idf_, np.float64)
        if self.char:  # n-gram weights over the distinct texts (copies say nothing new)
            distinct, inverse = np.unique(np.array(docs, dtype=object), return_inverse=True)
            cv = self._char_vectorizer()
            try:
                Xc = cv.fit_transform(list(distinct))[inverse]
            except ValueError:  # no n-gram seen min_df times
                cv = self._char_vectorizer()
                cv.min_df = 1
                Xc = cv.fit_transform([t + " _empty_" for t in distinct])[inverse]
            self.char_vocabulary_ = {str(k): int(v) for k, v in cv.vocabulary_.items()}
            self.char_idf_ = np.asarray(cv.idf_, np.float64)
            X = sparse.hstack([X, Xc]).tocsr()
        n_classes, n_words = y.shape[1], X.shape[1]
        self.coef_ = np.zeros((n_classes, n_words))
        self.intercept_ = np.zeros(n_classes)
        for c in range(n_classes):
            yc = y[:, c]
            if yc.min() == yc.max():  # a class absent (or everywhere): its constant rate
                rate = np.clip(yc.mean(), 1e-6, 1 - 1e-6)
                self.intercept_[c] = np.log(rate / (1 - rate))
                continue
            lr = LogisticRegression(C=self.C, solver="liblinear", max_iter=200).fit(X, yc)
            self.coef_[c] = lr.coef_[0]
            self.intercept_[c] = lr.intercept_[0]
        return self

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, len(self.intercept_)))
        z = np.asarray(self._transform(texts) @ self.coef_.T) + self.intercept_
        return np.asarray(expit(z))


def text_branch() -> TfidfLogistic:
    """The fused models' text branch (:data:`LEX_MODEL`): word 1-2-grams and character
    2-5-grams of the normalised text (leetspeak and spaced-out letters undone)."""
    return TfidfLogistic(char=True, normalize=True)
