"""Step 3 data preparation: Parquet I/O, DuckDB, schema checks, splits, downsampling."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import (
    DataError,
    check_schema,
    downsample_negatives,
    duckdb_query,
    random_split,
    read_parquet,
    recalibrate_downsampled,
    time_split,
    write_parquet,
)


def test_data_error_formats_path_line_and_field() -> None:
    err = DataError("logs/a.parquet", "expected int", line=7, field="user_id")
    assert str(err) == "logs/a.parquet:7: field 'user_id': expected int"
    assert (err.path, err.line, err.field) == ("logs/a.parquet", 7, "user_id")
    assert isinstance(err, ValueError)
    assert str(DataError("x.csv", "empty file")) == "x.csv: empty file"
    assert str(DataError("x.csv", "bad", field="f")) == "x.csv: field 'f': bad"


def test_write_and_read_parquet_roundtrip(tmp_path: Path) -> None:
    df = pd.DataFrame({"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [0.5, 1.5, 2.5]})
    path = write_parquet(df, tmp_path / "sub" / "t.parquet")
    back = read_parquet(path)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert list(read_parquet(path, columns=["c"]).columns) == ["c"]
    assert [p.name for p in path.parent.iterdir()] == ["t.parquet"]  # no temp file left


def test_write_parquet_streams_chunks(tmp_path: Path) -> None:
    def chunks() -> Iterator[pd.DataFrame]:
        for i in range(3):
            yield pd.DataFrame({"day": np.full(4, i, np.int64), "v": np.arange(4) * 1.0})

    path = write_parquet(chunks(), tmp_path / "log.parquet")
    back = read_parquet(path)
    assert len(back) == 12
    assert back["day"].tolist() == [0] * 4 + [1] * 4 + [2] * 4


def test_write_parquet_failure_leaves_nothing(tmp_path: Path) -> None:
    def bad() -> Iterator[pd.DataFrame]:
        yield pd.DataFrame({"a": [1]})
        yield pd.DataFrame({"b": ["oops"]})

    target = tmp_path / "x.parquet"
    with pytest.raises(DataError, match="chunk 1"):
        write_parquet(bad(), target)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(DataError, match="no chunks"):
        write_parquet(iter([]), target)


def test_read_parquet_errors_name_file_and_column(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"nope\.parquet: no such file"):
        read_parquet(tmp_path / "nope.parquet")
    path = write_parquet(pd.DataFrame({"a": [1]}), tmp_path / "a.parquet")
    with pytest.raises(DataError, match="field 'zz'") as info:
        read_parquet(path, columns=["zz"])
    assert info.value.field == "zz"


def test_duckdb_query_over_frames_and_parquet(tmp_path: Path) -> None:
    users = pd.DataFrame({"user_id": [1, 2], "country": ["us", "de"]})
    log = pd.DataFrame({"user_id": [1, 1, 2], "click": [1, 0, 1]})
    path = write_parquet(log, tmp_path / "log.parquet")
    sql = (
        "SELECT u.country, sum(l.click) AS clicks, count(*) AS n FROM log l "
        "JOIN users u USING (user_id) GROUP BY u.country ORDER BY u.country"
    )
    out = duckdb_query(sql, log=path, users=users)
    assert out["country"].tolist() == ["de", "us"]
    assert out["n"].tolist() == [1, 2]
    assert out["clicks"].tolist() == [1, 1]


def test_check_schema_accepts_good_frame() -> None:
    df = pd.DataFrame({"i": [1, 2], "f": [0.1, 2.0], "s": ["a", "b"], "b": [True, False]})
    check_schema(df, {"i": "int", "f": "float", "s": "str", "b": "bool"}, "good.parquet")
    check_schema(df, {"i": "float"}, "ints are floats")


@pytest.mark.parametrize(
    ("frame", "schema", "field", "line", "problem"),
    [
        (pd.DataFrame({"a": [1]}), {"b": "int"}, "b", None, "missing column"),
        (pd.DataFrame({"a": [1.5]}), {"a": "int"}, "a", None, "expected int"),
        (pd.DataFrame({"a": [1, 2]}), {"a": "str"}, "a", None, "expected str"),
        (pd.DataFrame({"a": [True]}), {"a": "int"}, "a", None, "expected int"),
        (pd.DataFrame({"a": [1.0, None, 3.0]}), {"a": "float"}, "a", 2, "null value"),
        (pd.DataFrame({"a": ["x", None]}), {"a": "str"}, "a", 2, "null value"),
    ],
)
def test_check_schema_names_the_column(
    frame: pd.DataFrame, schema: dict[str, str], field: str, line: int | None, problem: str
) -> None:
    with pytest.raises(DataError, match=problem) as info:
        check_schema(frame, schema, "impressions.parquet")  # type: ignore[arg-type]
    assert info.value.field == field
    assert info.value.line == line
    assert info.value.path == "impressions.parquet"


def test_time_split_boundaries() -> None:
    t = np.array([0, 5, 9, 10, 15, 19, 20, 30])
    train, val, test = time_split(t, (10, 20))
    assert t[train].tolist() == [0, 5, 9]
    assert t[val].tolist() == [10, 15, 19]
    assert t[test].tolist() == [20, 30]
    with pytest.raises(ValueError):
        time_split(t, (20, 10))


def test_random_split_partitions_and_is_seeded() -> None:
    a = random_split(100, (0.7, 0.2, 0.1), seed=3)
    b = random_split(100, (0.7, 0.2, 0.1), seed=3)
    c = random_split(100, (0.7, 0.2, 0.1), seed=4)
    assert [len(x) for x in a] == [70, 20, 10]
    assert sorted(np.concatenate(a).tolist()) == list(range(100))
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    assert not np.array_equal(a[0], c[0])
    with pytest.raises(ValueError):
        random_split(10, (0.5, 0.2, 0.2), seed=0)


def test_downsample_keeps_all_positives() -> None:
    rng = np.random.default_rng(123)  # not the sampler's seed: independent streams
    y = (rng.random(20_000) < 0.05).astype(np.int64)
    kept = downsample_negatives(y, 0.1, 0)
    assert np.array_equal(kept, np.sort(kept))
    assert y[kept].sum() == y.sum()
    neg_kept = (y[kept] == 0).sum() / (y == 0).sum()
    assert 0.09 < neg_kept < 0.11
    assert np.array_equal(kept, downsample_negatives(y, 0.1, 0))
    with pytest.raises(ValueError):
        downsample_negatives(y, 0.0, 0)


def test_recalibration_recovers_base_rate() -> None:
    """Train-on-downsampled CTR, recalibrated, equals the true CTR (He et al. 2014)."""
    rng = np.random.default_rng(42)
    base = 0.02
    y = (rng.random(200_000) < base).astype(np.int64)
    rate = 0.05
    kept = downsample_negatives(y, rate, 7)
    p_down = y[kept].mean()  # what a calibrated model trained on the sample predicts
    assert p_down > 5 * base  # the sample is far from the base rate
    p = recalibrate_downsampled(np.array([p_down]), rate)[0]
    assert abs(p - y.mean()) < 0.1 * y.mean()
    assert recalibrate_downsampled(np.array([0.3]), 1.0)[0] == pytest.approx(0.3)
