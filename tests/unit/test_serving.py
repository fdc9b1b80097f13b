"""The artifact readers every system's serving.py shares: errors name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlsd.models import ConstantRate, HistoricalCTR
from mlsd.serving import (
    ServingArtifactError,
    artifact_count,
    read_artifact_model,
    read_artifact_tables,
)


def test_artifact_count_takes_only_non_negative_integers(tmp_path: Path) -> None:
    path = tmp_path / "serving.json"
    assert artifact_count({"n": 3}, "n", path) == 3
    for bad in ({"n": -1}, {"n": True}, {"n": "3"}, {}):
        with pytest.raises(ServingArtifactError, match=r"serving\.json: field 'n'"):
            artifact_count(bad, "n", path)


def test_a_model_of_another_kind_or_a_broken_folder_is_refused(tmp_path: Path) -> None:
    model = ConstantRate().fit(pd.DataFrame({"d_x": [0.0, 1.0]}), [0, 1])
    model.save(tmp_path / "model")
    assert isinstance(read_artifact_model(tmp_path / "model", (ConstantRate,)), ConstantRate)
    with pytest.raises(ServingArtifactError, match="holds a ConstantRate, not a HistoricalCTR"):
        read_artifact_model(tmp_path / "model", (HistoricalCTR,))
    with pytest.raises(ServingArtifactError, match="unreadable model"):
        read_artifact_model(tmp_path / "missing", (ConstantRate,))


def test_an_unreadable_table_is_named(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1]}).to_parquet(tmp_path / "good.parquet")
    (tmp_path / "bad.parquet").write_bytes(b"not parquet")
    assert list(read_artifact_tables(tmp_path, ["good"])["good"]["a"]) == [1]
    with pytest.raises(ServingArtifactError, match=r"bad\.parquet: unreadable table"):
        read_artifact_tables(tmp_path, ["good", "bad"])
