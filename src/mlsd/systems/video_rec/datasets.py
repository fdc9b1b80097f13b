"""Step 3 for video recommendation on real data: MovieLens rating files.

Layouts, auto-detected from the file name (a directory is searched for them): ml-100k ``u.data``
(tab-separated ``user item rating timestamp``), ml-1m ``ratings.dat`` (``::``-separated) and
ml-latest ``ratings.csv`` (header ``userId,movieId,rating,timestamp``). Item metadata next to
the ratings (``u.item``, ``movies.dat``, ``movies.csv``) gives titles and genres.

The benchmark protocol run on them is in ``evaluation_movielens``.
"""

from __future__ import annotations

import csv
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import DataError

log = logging.getLogger(__name__)

LAYOUTS = {
    "u.data": ("ml-100k", "\t"),
    "ratings.dat": ("ml-1m", "::"),
    "ratings.csv": ("ml-latest", ","),
}


@dataclass
class MovieLens:
    """Ratings with ids remapped to 0..n-1, and one title and genre per item."""

    source: str
    layout: str
    ratings: pd.DataFrame  # user, item, rating, ts (remapped ids)
    items: pd.DataFrame  # item (0..n-1), movie_id, title, genre
    has_metadata: bool


def _find(path: Path) -> Path:
    if path.is_dir():
        for name in LAYOUTS:
            if (path / name).is_file():
                return path / name
        raise DataError(path, f"no MovieLens ratings file here (looked for {', '.join(LAYOUTS)})")
    if not path.is_file():
        raise DataError(path, "no such file")
    if path.name not in LAYOUTS:
        raise DataError(path, f"unknown MovieLens layout: expected one of {', '.join(LAYOUTS)}")
    return path


def _parse_ratings(path: Path, sep: str) -> pd.DataFrame:
    header = path.name == "ratings.csv"
    rows: list[tuple[int, int, float, int]] = []
    with path.open(encoding="latin-1", newline="") as fh:
        for lineno, line in enumerate(fh, start=1):
            if header and lineno == 1:
                if not line.lower().startswith("userid"):
                    raise DataError(
                        path, "expected the header userId,movieId,rating,timestamp", line=1
                    )
                continue
            if not line.strip():
                continue
            parts = line.rstrip("\r\n").split(sep)
            if not 3 <= len(parts) <= 4:
                raise DataError(
                    path, f"expected 4 fields separated by {sep!r}, got {len(parts)}", line=lineno
                )
            vals: list[Any] = []
            for field, raw, kind in zip(
                ("user", "item", "rating", "timestamp"),
                parts + ["0"] * (4 - len(parts)),
                (int, int, float, int),
                strict=False,
            ):
                try:
                    vals.append(kind(raw.strip()))
                except ValueError:
                    raise DataError(
                        path, f"not a number: {raw.strip()!r}", line=lineno, field=field
                    ) from None
            if not math.isfinite(vals[2]):
                raise DataError(
                    path, f"not a finite number: {parts[2].strip()!r}", line=lineno, field="rating"
                )
            rows.append((vals[0], vals[1], vals[2], vals[3]))
    if not rows:
        raise DataError(path, "no ratings in the file")
    return pd.DataFrame(rows, columns=["user_id", "movie_id", "rating", "ts"])


def _metadata(ratings_path: Path) -> pd.DataFrame | None:
    """``movie_id, title, genre`` from the item file next to the ratings, if there is one."""
    d = ratings_path.parent
    rows = []
    if (d / "u.item").is_file():
        genres = (
            "unknown",
            "action",
            "adventure",
            "animation",
            "children",
            "comedy",
            "crime",
            "documentary",
            "drama",
            "fantasy",
            "film-noir",
            "horror",
            "musical",
            "mystery",
            "romance",
            "sci-fi",
            "thriller",
            "war",
            "western",
        )
        with (d / "u.item").open(encoding="latin-1") as fh:
            for lineno, line in enumerate(fh, start=1):
                p = line.rstrip("\r\n").split("|")
                if len(p) < 5:
                    raise DataError(d / "u.item", "expected id|title|...", line=lineno)
                flags = [i for i, f in enumerate(p[5:24]) if f == "1"]
                rows.append(
                    (
                        _int(p[0], d / "u.item", lineno),
                        p[1],
                        genres[flags[0]] if flags else "unknown",
                    )
                )
    elif (d / "movies.dat").is_file() or (d / "movies.csv").is_file():
        path = d / "movies.dat" if (d / "movies.dat").is_file() else d / "movies.csv"
        with path.open(encoding="latin-1", newline="") as fh:
            reader = (
                (line.rstrip("\r\n").split("::") for line in fh)
                if path.suffix == ".dat"
                else csv.reader(fh)
            )
            for lineno, p in enumerate(reader, start=1):
                if path.suffix == ".csv" and lineno == 1:
                    continue
                if len(p) < 3:
                    raise DataError(path, "expected id, title, genres", line=lineno)
                rows.append((_int(p[0], path, lineno), p[1], p[2].split("|")[0].lower()))
    else:
        return None
    return pd.DataFrame(rows, columns=["movie_id", "title", "genre"])


def _int(raw: str, path: Path, lineno: int) -> int:
    try:
        return int(raw)
    except ValueError:
        raise DataError(path, f"not an integer: {raw!r}", line=lineno, field="movie_id") from None


def load_movielens(spec: str) -> MovieLens:
    """Read ``PATH`` (a ratings file or the directory holding one)."""
    path = _find(Path(spec))
    layout, sep = LAYOUTS[path.name]
    raw = _parse_ratings(path, sep)
    meta = _metadata(path)
    users, user_idx = np.unique(raw["user_id"].to_numpy(), return_inverse=True)
    movies, item_idx = np.unique(raw["movie_id"].to_numpy(), return_inverse=True)
    ratings = pd.DataFrame(
        {
            "user": user_idx.astype(np.int64),
            "item": item_idx.astype(np.int64),
            "rating": raw["rating"],
            "ts": raw["ts"],
        }
    )
    items = pd.DataFrame({"item": np.arange(len(movies)), "movie_id": movies})
    if meta is not None:
        items = items.merge(meta.drop_duplicates("movie_id"), on="movie_id", how="left")
    for col, default in (("title", ""), ("genre", "unknown")):
        if col not in items:
            items[col] = default
    items["title"] = items["title"].fillna("").astype(str)
    items.loc[items["title"] == "", "title"] = "movie " + items["movie_id"].astype(str)
    items["genre"] = items["genre"].fillna("unknown").astype(str)
    log.info(
        "read %d ratings of %d users and %d items from %s (%s)",
        len(ratings),
        len(users),
        len(movies),
        path,
        layout,
    )
    return MovieLens(str(path), layout, ratings, items, meta is not None)
