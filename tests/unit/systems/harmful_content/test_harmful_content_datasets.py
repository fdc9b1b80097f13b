"""Labelled text CSVs: the spec, quoting, HTML entities, empty texts, labels, the split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from mlsd.data import DataError
from mlsd.systems.harmful_content.datasets import columns_spec, parse_spec, read_text_file


def _write(path: Path, rows: list[str]) -> str:
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return str(path)


def _rows(n: int) -> list[str]:
    labels = ["benign", "hate", "spam"]
    return [f"post number {i} {labels[i % 3]},{labels[i % 3]}" for i in range(n)]


def test_spec_names_the_columns() -> None:
    assert parse_spec("csv:/a/b.csv") == ("csv", Path("/a/b.csv"), "text", ["label"])
    _, path, text, labels = parse_spec("csv:/x.csv?text=body&label=toxic,insult")
    assert (path, text, labels) == (Path("/x.csv"), "body", ["toxic", "insult"])
    with pytest.raises(DataError, match="csv:PATH"):
        parse_spec("tsv:/x.tsv")


def test_multiline_quotes_entities_and_empty_text(tmp_path: Path) -> None:
    rows = ['"line one\nline two",hate', "&amp; &lt;b&gt;,benign", ",spam", *_rows(30)]
    f = read_text_file("csv:" + _write(tmp_path / "d.csv", ["text,label", *rows]), 0)
    assert f.texts[0] == "line one\nline two" and f.texts[1] == "& <b>" and f.texts[2] == ""
    assert f.classes == ("benign", "hate", "spam") and f.benign == 0 and not f.multilabel
    assert f.Y.shape == (33, 3) and (f.Y.sum(axis=1) == 1).all()
    assert len(np.intersect1d(f.train, f.test)) == 0 and len(np.intersect1d(f.val, f.test)) == 0
    assert len(f.test) == round(0.2 * 33) or len(f.test) == 7


def test_split_is_the_published_one(tmp_path: Path) -> None:
    from sklearn.model_selection import train_test_split

    spec = "csv:" + _write(tmp_path / "d.csv", ["text,label", *_rows(50)])
    f = read_text_file(spec, 7)
    labels = f.Y.argmax(axis=1)
    _, test = train_test_split(np.arange(50), test_size=0.2, stratify=labels, random_state=7)
    np.testing.assert_array_equal(f.test, np.sort(test))


def test_numeric_labels_and_benign_index(tmp_path: Path) -> None:
    rows = [f"text {i},{i % 2}" for i in range(20)]
    f = read_text_file("csv:" + _write(tmp_path / "d.csv", ["text,label", *rows]), 0)
    assert f.classes == ("0", "1") and f.benign == 0


def test_several_label_columns_are_multi_label(tmp_path: Path) -> None:
    rows = [f"t {i},{i % 2},{int(i % 3 == 0)}" for i in range(30)]
    spec = (
        "csv:"
        + _write(tmp_path / "d.csv", ["body,toxic,insult", *rows])
        + "?text=body&label=toxic,insult"
    )
    f = read_text_file(spec, 0)
    assert f.multilabel and f.classes == ("toxic", "insult") and f.benign is None
    assert f.Y[:3].tolist() == [[0, 1], [1, 0], [0, 0]]


def test_an_unknown_label_in_the_test_file_is_named(tmp_path: Path) -> None:
    train = "csv:" + _write(tmp_path / "train.csv", ["text,label", *_rows(30)])
    test = "csv:" + _write(tmp_path / "test.csv", ["text,label", "ok,benign", "bad,violence"])
    with pytest.raises(DataError, match=r"test.csv:3: field 'label': unknown label 'violence'"):
        read_text_file(train, 0, test)
    f = read_text_file(train, 0, "csv:" + _write(tmp_path / "t2.csv", ["text,label", "x,hate"]))
    assert len(f.test) == 1 and f.texts[int(f.test[0])] == "x"


def test_column_options_become_the_spec(tmp_path: Path) -> None:
    path = tmp_path / "my data.csv"
    spec = columns_spec(f"csv:{path}", "body", ["toxic", "insult"])
    assert parse_spec(spec) == ("csv", path, "body", ["toxic", "insult"])
    assert parse_spec(columns_spec(f"csv:{path}", None, ["y"]))[2:] == ("text", ["y"])
    for bad, match in (
        (None, "need --data csv:PATH"),
        ("tsv:/x.tsv", "csv:PATH only"),
        ("csv:/x.csv?text=a", "either in the spec"),
    ):
        with pytest.raises(DataError, match=match):
            columns_spec(bad, "body", ["y"])


def test_the_cli_refuses_column_options_elsewhere(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from mlsd.cli import app

    runner = CliRunner()
    out = str(tmp_path / "run")
    wrong = runner.invoke(app, ["run", "ad-click", "--text-column", "t", "--out", out])
    assert wrong.exit_code == 2 and "are for harmful-content" in wrong.output
    no_data = runner.invoke(app, ["run", "harmful-content", "--label-column", "y", "--out", out])
    assert no_data.exit_code == 2 and "need --data csv:PATH" in no_data.output
    missing = _write(tmp_path / "d.csv", ["body,y", *(f"t {i},{i % 2}" for i in range(20))])
    args = ["run", "harmful-content", "--data", f"csv:{missing}", "--label-column", "nope"]
    bad = runner.invoke(app, [*args, "--text-column", "body", "--out", out])
    assert bad.exit_code == 2 and "field 'nope': no such column" in bad.output
    assert not (tmp_path / "run").exists()
