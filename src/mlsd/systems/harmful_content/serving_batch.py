"""Batch classification of a file of posts (``mlsd classify-posts``), no HTTP.

The input is a CSV with a ``text`` column and optionally ``image`` (a PNG/JPEG path, relative to
the CSV's folder) and ``author_id``; the output is the same rows with one probability column per
harm class (``p_<class>``), the ``action`` and the ``harm_class``. Posts are scored in batches
(one text-encoder and one CNN call per batch); the output is written atomically, so a failed
run leaves no partial file.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.artifacts import atomic_path
from mlsd.data import DataError
from mlsd.systems.harmful_content.serving import HarmScorer, ImageDecodeError, Post


def read_posts(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise DataError(path, "no such file")
    try:
        frame = pd.read_csv(path, dtype={"text": str}, keep_default_na=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DataError(path, f"unreadable CSV: {exc}") from exc
    if "text" not in frame.columns:
        raise DataError(path, "no such column", field="text")
    return frame


def _posts(frame: pd.DataFrame, folder: Path, path: Path, start: int) -> list[Post]:
    out = []
    for i, row in enumerate(frame.to_dict("records")):
        image = None
        if str(row.get("image", "") or ""):
            img_path = folder / str(row["image"])
            if not img_path.is_file():
                raise DataError(
                    path, f"no image file {img_path}", line=start + i + 2, field="image"
                )
            image = img_path.read_bytes()
        author = row.get("author_id", "")
        author_id = int(author) if str(author).strip().lstrip("-").isdigit() else None
        out.append(Post(str(row["text"]), image, author_id))
    return out


def classify_file(
    scorer: HarmScorer,
    path: Path,
    out: Path,
    batch_size: int = 256,
    progress: Callable[[int, int], None] | None = None,
) -> pd.DataFrame:
    """Classify every post of ``path`` into ``out``; returns the written frame."""
    frame = read_posts(path)
    n = len(frame)
    probs = np.zeros((n, len(scorer.classes)))
    actions, classes = [], []
    for start in range(0, n, batch_size):
        posts = _posts(frame.iloc[start : start + batch_size], path.parent, path, start)
        try:
            P, _ = scorer.score(posts)
        except ImageDecodeError as exc:
            raise DataError(
                path, f"an image in rows {start + 2}-{start + len(posts) + 1}: {exc}"
            ) from exc
        probs[start : start + len(posts)] = P
        for p in P:
            action, cls, _ = scorer.decide(p)
            actions.append(action)
            classes.append(cls or "")
        if progress is not None:
            progress(min(start + batch_size, n), n)
    result = frame.copy()
    for k, c in enumerate(scorer.classes):
        result[f"p_{c}"] = probs[:, k]
    result["action"] = actions
    result["harm_class"] = classes
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        result.to_csv(tmp, index=False)
    return result
