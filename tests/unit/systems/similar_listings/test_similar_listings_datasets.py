"""The session click log: detection and the next-item protocol."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlsd.data import DataError
from mlsd.systems.similar_listings.datasets import load_sessions_file

DAY = 86_400


def write_log(path: Path, delim: str = ",", header: bool = True) -> Path:
    """Train sessions on days 0-9 over items 1-4 (and a rare item 99), a one-click session,
    and test sessions on day 20 with an item never seen in training."""
    rows = []
    sid = 0
    for day in range(10):
        for items in ([1, 2, 3], [2, 3, 4], [4, 1]):
            sid += 1
            rows += [(sid, i, day * DAY + k) for k, i in enumerate(items)]
    rows += [(500, 99, 5 * DAY), (500, 1, 5 * DAY + 1), (501, 3, 6 * DAY)]  # rare, one click
    rows += [(900, 1, 20 * DAY), (900, 2, 20 * DAY + 1), (900, 77, 20 * DAY + 2)]
    rows += [(900, 3, 20 * DAY + 3), (901, 4, 20 * DAY), (901, 77, 20 * DAY + 1)]
    lines = [f"session_id{delim}item_id{delim}timestamp{delim}extra"] if header else []
    lines += [delim.join([str(s), str(i), str(t), "x"]) for s, i, t in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(("delim", "header"), [(",", True), (";", True), ("\t", False)])
def test_the_protocol_on_a_small_log(tmp_path: Path, delim: str, header: bool) -> None:
    fd = load_sessions_file(f"sessions:{write_log(tmp_path / 'log.csv', delim, header)}")
    assert sorted(fd.listings["listing_id"]) == [1, 2, 3, 4]  # 99 is rare, 77 unseen in train
    assert len(fd.train) == 30  # session 500 is one click once the rare 99 goes; 501 is one
    assert len(fd.test) == 1  # 901 has one known click left
    item = fd.listings["listing_id"].to_numpy()
    assert list(item[fd.test.clicks(0)]) == [1, 2, 3]
    assert fd.time_kind == "seconds"


def test_a_spec_without_format_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="sessions:PATH"):
        load_sessions_file(str(tmp_path / "log.csv"))
