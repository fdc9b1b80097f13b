"""Criteo and libFM/libSVM loaders: feature frames from files, and clear errors for bad files."""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlsd.data import DataError
from mlsd.models import HASH_BUCKETS, categorical_columns, dense_columns
from mlsd.systems.ad_click.datasets import (
    LoadedData,
    check_split,
    check_trainable,
    load_criteo,
    load_libfm,
    parse_data_spec,
    read_dataset,
)


def criteo_line(label: str, ints: list[str], cats: list[str]) -> str:
    return "\t".join([label, *ints, *cats])


FULL = criteo_line("1", ["5", "", "-3", *["7"] * 10], ["68fd1e64", *["a"] * 24, ""])
SHORT = "0\t1\t2"  # padded with missing values
OTHER = criteo_line("0", ["0", "0", "1", *["0"] * 10], ["75ac2fe6", *["b"] * 25])


def write(path: Path, lines: list[str]) -> Path:
    text = "\n".join(lines) + "\n"
    if path.suffix == ".gz":
        with gzip.open(path, "wt") as fh:
            fh.write(text)
    else:
        path.write_text(text)
    return path


def assert_feature_frame(X: pd.DataFrame) -> None:
    for c in categorical_columns(X):
        assert X[c].dtype == np.int64
        assert X[c].between(0, HASH_BUCKETS - 1).all()
    for c in dense_columns(X):
        assert pd.api.types.is_float_dtype(X[c])
    assert len(dense_columns(X)) + len(categorical_columns(X)) == X.shape[1]


@pytest.mark.parametrize("name", ["train.txt", "train.txt.gz"])
def test_load_criteo(tmp_path: Path, name: str) -> None:
    path = write(tmp_path / name, [FULL, SHORT, "", OTHER])
    data = load_criteo(path)
    assert data.fmt == "criteo" and data.has_time and data.n_rows == 3
    assert data.y.tolist() == [1, 0, 0]
    assert data.positive_rate == pytest.approx(1 / 3)
    X = data.X
    assert_feature_frame(X)
    assert len(categorical_columns(X)) == 26 and X.shape[1] == 26 + 26
    assert X["d_I1"].tolist() == pytest.approx([np.log1p(5), np.log1p(1), 0.0])
    assert X["d_I3"].iloc[0] == pytest.approx(-np.log1p(3))  # negative counts keep their sign
    assert X["d_I2"].iloc[0] == 0.0 and X["d_I2_missing"].tolist() == [1.0, 0.0, 0.0]
    assert X["d_I13_missing"].tolist() == [0.0, 1.0, 0.0]
    # missing is a category of its own: absent (short row) and empty hash alike
    assert X["c_C26"].iloc[0] == X["c_C26"].iloc[1] != X["c_C26"].iloc[2]
    assert X["c_C1"].iloc[0] != X["c_C1"].iloc[2]
    # the same value in another field hashes elsewhere
    assert X["c_C2"].iloc[0] != X["c_C3"].iloc[0]  # both "a"


def test_criteo_hashing_is_stable_across_files(tmp_path: Path) -> None:
    a = load_criteo(write(tmp_path / "a.txt", [FULL, OTHER])).X
    b = load_criteo(write(tmp_path / "b.txt", [OTHER])).X
    assert a["c_C1"].iloc[1] == b["c_C1"].iloc[0]


@pytest.mark.parametrize(
    ("lines", "line", "field", "message"),
    [
        ([FULL, FULL + "\textra"], 2, None, "41 tab-separated fields"),
        ([FULL, SHORT, "0\t1\t2\t3.5"], 3, "I3", "integer"),
        ([FULL, "0\tabc"], 2, "I1", "integer"),
        ([FULL, SHORT.replace("0", "2", 1)], 2, "label", "0 or 1"),
        (["yes\t1"], 1, "label", "0 or 1"),
    ],
)
def test_bad_criteo_files_name_file_line_and_field(
    tmp_path: Path, lines: list[str], line: int, field: str | None, message: str
) -> None:
    path = write(tmp_path / "bad.txt", lines)
    with pytest.raises(DataError, match=message) as info:
        load_criteo(path)
    err = info.value
    assert err.path == str(path) and err.line == line and err.field == field
    assert f"{path}:{line}" in str(err)
    if field:
        assert f"field '{field}'" in str(err)


@pytest.mark.parametrize("loader", [load_criteo, load_libfm])
def test_empty_files_are_errors(tmp_path: Path, loader: Callable[[Path], LoadedData]) -> None:
    for name, text in [("empty.txt", ""), ("blank.txt", "\n  \n")]:
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(DataError, match="empty") as info:
            loader(path)
        assert str(path) in str(info.value)


@pytest.mark.parametrize("name", ["frappe.libfm", "frappe.libfm.gz"])
def test_load_libfm(tmp_path: Path, name: str) -> None:
    lines = ["1 3:1 10:1 20:0.5", "-1 4:1  11:1\t21:1", "", "1.0 3:1 12:1", "-1.0 4:1 10:1 22:2"]
    data = load_libfm(write(tmp_path / name, lines))
    assert data.fmt == "libfm" and not data.has_time and data.n_rows == 4
    assert data.y.tolist() == [1, 0, 1, 0]
    X = data.X
    assert_feature_frame(X)
    assert categorical_columns(X) == ["c_f0", "c_f1", "c_f2"]
    assert dense_columns(X) == ["d_f2"]  # f0 and f1 are plain one-hot
    assert X["d_f2"].tolist() == [0.5, 1.0, 0.0, 2.0]
    assert X["c_f0"].iloc[0] == X["c_f0"].iloc[2] != X["c_f0"].iloc[1]
    assert X["c_f1"].iloc[0] == X["c_f1"].iloc[3]
    assert X["c_f2"].iloc[2] not in set(X["c_f2"].iloc[[0, 1, 3]])  # absent is its own value


def test_libfm_zero_one_labels(tmp_path: Path) -> None:
    data = load_libfm(write(tmp_path / "ml.libfm", ["0 1:1 2:1", "1 1:1 3:1"]))
    assert data.y.tolist() == [0, 1]


@pytest.mark.parametrize(
    ("bad_line", "field", "message"),
    [
        ("1 3:1 10", "f1", "idx:value"),
        ("1 x:1 10:1", "f0", "idx:value"),
        ("1 3:1 10:abc", "f1", "idx:value"),
        ("2 3:1 10:1", "label", "label"),
        ("click 3:1 10:1", "label", "label"),
    ],
)
def test_bad_libfm_files_name_file_line_and_field(
    tmp_path: Path, bad_line: str, field: str, message: str
) -> None:
    path = write(tmp_path / "bad.libfm", ["1 3:1 10:1", "", bad_line])
    with pytest.raises(DataError, match=message) as info:
        load_libfm(path)
    err = info.value
    assert (err.path, err.line, err.field) == (str(path), 3, field)
    assert f"{path}:3: field '{field}'" in str(err)


def test_parse_data_spec(tmp_path: Path) -> None:
    path = write(tmp_path / "d.txt", [FULL])
    assert parse_data_spec(f"criteo:{path}") == ("criteo", path)
    assert parse_data_spec(f"libsvm:{path}") == ("libsvm", path)
    with pytest.raises(DataError, match="criteo, libfm, libsvm"):
        parse_data_spec(f"parquet:{path}")
    with pytest.raises(DataError, match="criteo, libfm, libsvm"):
        parse_data_spec(str(path))
    with pytest.raises(DataError, match="no such file"):
        parse_data_spec(f"criteo:{tmp_path / 'missing.txt'}")


def test_load_dataset_dispatches_on_the_format(tmp_path: Path) -> None:
    crit = write(tmp_path / "c.txt", [FULL, OTHER])
    fm = write(tmp_path / "f.libsvm", ["1 1:1", "-1 2:1"])
    assert read_dataset(f"criteo:{crit}").fmt == "criteo"
    loaded = read_dataset(f"libsvm:{fm}")
    assert loaded.fmt == "libsvm" and loaded.y.tolist() == [1, 0]


def test_gzip_that_is_truncated_or_not_gzip_is_named(tmp_path: Path) -> None:
    whole = gzip.compress(("\n".join([FULL, OTHER] * 50) + "\n").encode())
    cut = tmp_path / "cut.txt.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(DataError, match=r"cut\.txt\.gz: truncated gzip file"):
        load_criteo(cut)
    plain = tmp_path / "plain.txt.gz"
    plain.write_text(FULL + "\n")
    with pytest.raises(DataError, match=r"plain\.txt\.gz: not a gzip file"):
        load_libfm(plain)


def _loaded(y: list[int]) -> LoadedData:
    arr = np.asarray(y, dtype=np.int64)
    X = pd.DataFrame({"d_x": np.zeros(len(arr))})
    return LoadedData(X, arr, "f.txt", "criteo", len(arr), float(arr.mean()), True)


def test_check_trainable_gives_the_reason() -> None:
    check_trainable(_loaded([0, 1] * 10))
    with pytest.raises(DataError, match=r"f\.txt: too few rows to split: 4, need at least 20"):
        check_trainable(_loaded([0, 1, 0, 1]))
    with pytest.raises(DataError, match="one class only: all 30 rows are clicks"):
        check_trainable(_loaded([1] * 30))


def test_check_split_names_the_part_and_its_file() -> None:
    y = np.array([0, 1, 0, 1, 0, 0])
    split = {"train": np.array([0, 1]), "validation": np.array([2, 3]), "test": np.array([4, 5])}
    sources = {"train": "a.txt", "validation": "a.txt", "test": "t.txt"}
    with pytest.raises(DataError, match=r"t\.txt: too few clicks to split: the test part \(2 rows"):
        check_split(split, y, sources)
    split["test"] = np.array([3, 4])
    check_split(split, y, sources)
    split["validation"] = np.array([], dtype=np.int64)
    with pytest.raises(DataError, match="the validation part \\(0 rows\\) holds none"):
        check_split(split, y, sources)
