"""``--data mind:DIR``: the layout of the public news-recommendation benchmark (MIND).

``DIR`` holds two tab-separated files without a header:

* ``behaviors.tsv``: impression id, user id, time (``11/15/2019 8:55:22 AM``), the click history
  (space-separated news ids, may be empty) and the impressions (``N123-1 N456-0``: news id and
  clicked or not);
* ``news.tsv``: news id, category, subcategory, title, abstract, then url and entities (unused).

``--test-data mind:DEVDIR`` gives a later folder in the same layout (the benchmark's dev set);
without it the impressions are split by time, the last fifth of the time range being the test
set. A line with too few fields, a time that does not parse, an impression that is not
``id-0``/``id-1``, or a news id that ``news.tsv`` does not know is a
:class:`~mlsd.data.DataError` naming the file, the line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mlsd.data import DataError

FORMAT = "mind"
BEHAVIOR_FIELDS = ("impression_id", "user_id", "time", "history", "impressions")
NEWS_FIELDS = ("news_id", "category", "subcategory", "title", "abstract")
TIME_FORMAT = "%m/%d/%Y %I:%M:%S %p"
TEST_SHARE = 0.2


@dataclass
class MindFiles:
    news: pd.DataFrame  # news_id, category, subcategory, title (one row per news, both folders)
    behaviors: pd.DataFrame  # impression_id, user_id, ts, history (list of str), split
    impressions: pd.DataFrame  # impression (row of behaviors), news_id, label
    source: str


def parse_spec(spec: str) -> Path:
    fmt, sep, rest = spec.partition(":")
    if not sep or fmt.strip().lower() != FORMAT:
        raise DataError(spec, f"unknown data format {fmt!r}: news-feed reads {FORMAT}:DIR")
    root = Path(rest).expanduser()
    if not root.is_dir():
        raise DataError(root, f"no such directory (from data spec {spec!r})")
    for name in ("behaviors.tsv", "news.tsv"):
        if not (root / name).is_file():
            raise DataError(root / name, "no such file (the mind layout needs it)")
    return root


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"not UTF-8 text: {exc}") from exc
    return text.splitlines()


def read_news(path: Path) -> pd.DataFrame:
    rows = []
    for i, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 4:
            raise DataError(
                path,
                "missing field (a line needs at least 4)",
                line=i,
                field=NEWS_FIELDS[len(parts)],
            )
        if not parts[0].strip():
            raise DataError(path, "empty news id", line=i, field="news_id")
        rows.append((parts[0].strip(), parts[1], parts[2], parts[3]))
    if not rows:
        raise DataError(path, "no rows")
    return pd.DataFrame(
        rows, columns=["news_id", "category", "subcategory", "title"]
    ).drop_duplicates("news_id")


def read_behaviors(path: Path, known: set[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    beh: list[tuple[str, str, int, list[str]]] = []
    imp_rows: list[tuple[int, str, int]] = []
    for i, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 5:
            raise DataError(
                path, "missing field (a line needs 5)", line=i, field=BEHAVIOR_FIELDS[len(parts)]
            )
        try:
            ts = int(
                datetime.strptime(parts[2].strip(), TIME_FORMAT).replace(tzinfo=UTC).timestamp()
            )
        except ValueError as exc:
            raise DataError(
                path, f"{parts[2]!r} is not a time like 11/15/2019 8:55:22 AM", line=i, field="time"
            ) from exc
        history = parts[3].split()
        unknown = [n for n in history if n not in known]
        if unknown:
            raise DataError(
                path, f"unknown news id {unknown[0]!r} (not in news.tsv)", line=i, field="history"
            )
        row = len(beh)
        tokens = parts[4].split()
        if not tokens:
            raise DataError(path, "no impressions", line=i, field="impressions")
        for tok in tokens:
            news, dash, label = tok.rpartition("-")
            if not dash or label not in ("0", "1"):
                raise DataError(
                    path, f"{tok!r} is not newsid-0 or newsid-1", line=i, field="impressions"
                )
            if news not in known:
                raise DataError(
                    path, f"unknown news id {news!r} (not in news.tsv)", line=i, field="impressions"
                )
            imp_rows.append((row, news, int(label)))
        beh.append((parts[0].strip(), parts[1].strip(), ts, history))
    if not beh:
        raise DataError(path, "no rows")
    behaviors = pd.DataFrame(beh, columns=["impression_id", "user_id", "ts", "history"])
    impressions = pd.DataFrame(imp_rows, columns=["impression", "news_id", "label"])
    return behaviors, impressions


def read_mind(spec: str, test_spec: str | None = None) -> MindFiles:
    root = parse_spec(spec)
    news = read_news(root / "news.tsv")
    test_root = parse_spec(test_spec) if test_spec else None
    if test_root is not None:
        news = pd.concat(
            [news, read_news(test_root / "news.tsv")], ignore_index=True
        ).drop_duplicates("news_id")
    known = set(news["news_id"])
    beh, imp = read_behaviors(root / "behaviors.tsv", known)
    if test_root is not None:
        tbeh, timp = read_behaviors(test_root / "behaviors.tsv", known)
        timp["impression"] += len(beh)
        beh["split"] = "train"
        tbeh["split"] = "test"
        beh = pd.concat([beh, tbeh], ignore_index=True)
        imp = pd.concat([imp, timp], ignore_index=True)
    else:
        ts = beh["ts"].to_numpy()
        cut = ts.min() + (1 - TEST_SHARE) * (ts.max() - ts.min())
        beh["split"] = np.where(ts < cut, "train", "test") if ts.max() > ts.min() else "train"
    for split in ("train", "test"):
        if not (beh["split"] == split).any():
            raise DataError(root / "behaviors.tsv", f"no {split} impressions after the time split")
    source = f"{FORMAT}:{root}" + (f" (test: {test_root})" if test_root else "")
    return MindFiles(news.reset_index(drop=True), beh, imp, source)
