"""Edge lists (``--data edgelist:PATH``): comments, self-loops, duplicates, timestamps or not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlsd.data import DataError
from mlsd.systems.people_you_may_know.datasets import FILE_DAYS, read_edgelist, read_files


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


def ring(n: int, ts: bool) -> list[str]:
    return [f"{10 * i} {10 * ((i + 1) % n)}" + (f" {1000 + i}" if ts else "") for i in range(n)]


def test_comments_self_loops_and_duplicates(tmp_path: Path) -> None:
    lines = ["# a comment", "", *ring(30, ts=True), "5 5 7", "10 0 2000  # duplicate, later"]
    g = read_edgelist(write(tmp_path / "g.txt", lines), seed=0)
    assert len(g.edges) == 30 and g.timestamps and len(g.users) == 30
    assert (g.edges["u"] < g.edges["v"]).all()
    assert list(g.node_ids[:3]) == [0, 10, 20]  # ids renumbered (sorted), the originals kept
    first = g.edges[(g.node_ids[g.edges["u"]] == 0) & (g.node_ids[g.edges["v"]] == 10)]
    assert int(first["day"].iloc[0]) == 0  # the earliest copy of a duplicate is kept
    assert g.edges["day"].is_monotonic_increasing and g.edges["day"].max() == FILE_DAYS - 1
    assert (g.users["school"] == -1).all()


def test_without_timestamps_the_order_is_a_seeded_shuffle(tmp_path: Path) -> None:
    path = write(tmp_path / "g.txt", ring(40, ts=False))
    a, b, c = (read_edgelist(path, seed=s) for s in (0, 0, 1))
    assert not a.timestamps and a.edges.equals(b.edges) and not a.edges.equals(c.edges)


def test_join_day_is_the_day_of_a_users_first_friendship(tmp_path: Path) -> None:
    g = read_edgelist(write(tmp_path / "g.txt", ring(40, ts=True)), seed=0)
    for uid in range(len(g.users)):
        e = g.edges[(g.edges["u"] == uid) | (g.edges["v"] == uid)]
        assert g.users["join_day"].iloc[uid] == e["day"].min()
    assert np.isfinite(g.metrics()["data"]["mean_degree"])


@pytest.mark.parametrize(
    ("lines", "line", "field"),
    [
        (["1 2", "3 x"], 2, "v"),
        (["1 2", "-3 4"], 2, "u"),
        (["1 2 5", "3 4"], 2, "timestamp"),
        (["1 2 5", "3 4 soon"], 2, "timestamp"),
        (["1 2", "3"], 2, "u"),
        (["1 2 3 4"], 1, "timestamp"),
    ],
)
def test_malformed_lines_name_the_line_and_field(
    tmp_path: Path, lines: list[str], line: int, field: str
) -> None:
    path = write(tmp_path / "bad.txt", lines)
    with pytest.raises(DataError, match=rf"bad.txt:{line}: field '{field}'"):
        read_edgelist(path, seed=0)


def test_unknown_format_missing_file_and_too_few_edges(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="FORMAT:PATH"):
        read_files(f"csv:{tmp_path}", 0)
    with pytest.raises(DataError, match="no such file"):
        read_files(f"edgelist:{tmp_path / 'nope.txt'}", 0)
    with pytest.raises(DataError, match="at least"):
        read_edgelist(write(tmp_path / "few.txt", ["1 2", "2 3"]), 0)
