"""Step 3 for people you may know: the graph a run works on, from the world or from a file.

:class:`GraphData` is the one layout both sources produce: a public user table (row = user id:
school, employer, city, age, join day) and the friendships ``(u < v, day)``.

``--data edgelist:PATH`` reads a whitespace-separated edge list: ``u v`` per line, ``#`` comments
and blank lines skipped, an optional third column with a timestamp (every line or none).
Self-loops are dropped and duplicates kept once (the earliest). Node ids are non-negative
integers, renumbered ``0..n-1`` in sorted order (the originals are kept as ``node_ids``
and served). With timestamps, the edges are cut into
:data:`FILE_DAYS` days of equal size by time (and the run uses the time split); without, the
run uses the standard link-prediction hold-out
(:func:`~mlsd.systems.people_you_may_know.features_split.compute_holdout`), and the days are
only a seeded random order. A file has no attributes: school, employer and city are unknown
(``-1``) and ages 0. A malformed line is a :class:`~mlsd.data.DataError` naming the file, the
line and the field.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlsd.data import DataError
from mlsd.report import Blueprint
from mlsd.rng import rng
from mlsd.systems.people_you_may_know.world import PUBLIC_COLUMNS, PymkWorld

FORMATS = ("edgelist",)
FILE_DAYS = 20
FILE_WINDOW = 4
MIN_EDGES = 20


@dataclass(frozen=True)
class GraphData:
    """A run's graph: the public user table and every friendship with its day."""

    users: pd.DataFrame
    edges: pd.DataFrame  # u < v, day (int), in day order
    n_days: int
    window: int
    source: str
    timestamps: bool
    world: PymkWorld | None = None
    node_ids: np.ndarray | None = None  # a file's original ids, by user id

    def metrics(self) -> dict[str, Any]:
        deg = np.bincount(
            np.concatenate([self.edges["u"], self.edges["v"]]), minlength=len(self.users)
        )
        out: dict[str, Any] = {
            "source": self.source,
            "users": len(self.users),
            "friendships": len(self.edges),
            "days": self.n_days,
            "label_window_days": self.window,
            "mean_degree": float(deg.mean()) if len(deg) else 0.0,
            "timestamps": self.timestamps,
        }
        if self.world is not None:
            out["requests_sent"] = int(sum(self.world.sent_per_day))
            out["requests_accepted"] = int(sum(self.world.accepted_per_day))
        return {"data": out}


def world_graph(world: PymkWorld) -> GraphData:
    c = world.config
    return GraphData(
        world.public_users,
        world.edges,
        c.n_days,
        c.window,
        f"world ({world.scale}, seed {world.seed})",
        True,
        world,
    )


def parse_spec(spec: str) -> tuple[str, Path]:
    fmt, sep, path = spec.partition(":")
    if not sep or fmt not in FORMATS or not path:
        raise DataError(spec, f"--data must be FORMAT:PATH with FORMAT one of {', '.join(FORMATS)}")
    return fmt, Path(path).expanduser()


def read_edgelist(path: Path, seed: int) -> GraphData:
    """The graph of an edge-list file (see the module docstring)."""
    if not path.is_file():
        raise DataError(path, "no such file")
    us: list[int] = []
    vs: list[int] = []
    ts: list[float] = []
    has_ts: bool | None = None
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise DataError(path, "not UTF-8 text", line=lineno, field="u") from None
            line = line.split("#", 1)[0].strip()
            if not line:
                continue
            parts = line.split()
            if len(parts) not in (2, 3):
                raise DataError(
                    path,
                    f"expected 'u v' or 'u v timestamp', got {len(parts)} columns",
                    line=lineno,
                    field="u" if len(parts) < 2 else "timestamp",
                )
            for name, token in zip(("u", "v"), parts[:2], strict=True):
                if not token.isdigit():
                    raise DataError(
                        path,
                        f"{token[:40]!r} is not a non-negative integer",
                        line=lineno,
                        field=name,
                    )
            this_ts = len(parts) == 3
            if has_ts is None:
                has_ts = this_ts
            elif has_ts != this_ts:
                raise DataError(
                    path,
                    "some lines have a timestamp and others do not",
                    line=lineno,
                    field="timestamp",
                )
            if this_ts:
                try:
                    t = float(parts[2])
                except ValueError:
                    t = float("nan")
                if not np.isfinite(t):
                    raise DataError(
                        path, f"{parts[2][:40]!r} is not a number", line=lineno, field="timestamp"
                    )
                ts.append(t)
            us.append(int(parts[0]))
            vs.append(int(parts[1]))
    u_raw, v_raw = np.asarray(us, np.int64), np.asarray(vs, np.int64)
    keep = u_raw != v_raw  # self-loops
    if int(keep.sum()) < MIN_EDGES:
        raise DataError(path, f"needs at least {MIN_EDGES} edges between distinct nodes")
    order_key = (
        np.asarray(ts, np.float64)
        if has_ts
        else rng(seed, "pymk/edgelist-order").permutation(len(u_raw)).astype(np.float64)
    )
    u_raw, v_raw, key = u_raw[keep], v_raw[keep], order_key[keep]
    node_ids, inverse = np.unique(np.concatenate([u_raw, v_raw]), return_inverse=True)
    u, v = inverse[: len(u_raw)], inverse[len(u_raw) :]
    lo, hi = np.minimum(u, v), np.maximum(u, v)
    frame = pd.DataFrame({"u": lo, "v": hi, "key": key}).sort_values("key", kind="stable")
    frame = frame.drop_duplicates(["u", "v"], keep="first")
    rank = np.arange(len(frame))
    frame["day"] = (rank * FILE_DAYS // max(len(frame), 1)).astype(np.int32)
    edges = frame[["u", "v", "day"]].reset_index(drop=True)
    n = len(node_ids)
    first = np.full(n, FILE_DAYS, np.int32)
    np.minimum.at(first, edges["u"].to_numpy(), edges["day"].to_numpy())
    np.minimum.at(first, edges["v"].to_numpy(), edges["day"].to_numpy())
    users = pd.DataFrame(
        {
            "user_id": np.arange(n, dtype=np.int64),
            "school": np.full(n, -1, np.int64),
            "employer": np.full(n, -1, np.int64),
            "city": np.full(n, -1, np.int64),
            "age": np.zeros(n, np.int32),
            "join_day": first,
        }
    )[list(PUBLIC_COLUMNS)]
    return GraphData(
        users, edges, FILE_DAYS, FILE_WINDOW, f"edgelist:{path}", bool(has_ts), None, node_ids
    )


def read_files(spec: str, seed: int) -> GraphData:
    _, path = parse_spec(spec)
    return read_edgelist(path, seed)


FILE_SKIPS = (
    ("online", "an edge list cannot answer an A/B test: it has no users who respond"),
    ("oracle", "an edge list has no true friendship probabilities"),
)


def report_data(bp: Blueprint, data: GraphData) -> None:
    m = data.metrics()["data"]
    bp.section("Data")
    how = (
        "the world's friendships, each with the day it formed"
        if data.world is not None
        else (
            "an edge list, cut into days of equal size by timestamp"
            if data.timestamps
            else "an edge list without timestamps: evaluated by the standard random hold-out"
        )
    )
    bp.text(f"Source: {m['source']}: {how}.")
    bp.table(["figure", "value"], [[k, v] for k, v in m.items() if k != "source"])
