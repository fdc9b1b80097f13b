"""What the systems' tests share: ``refused_run``, the check behind every bad-file table (a
malformed ``--data`` file is refused by ``mlsd run`` with exit 2 and one line naming it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bad_file_cases import Builder, RefusedRun
from typer.testing import CliRunner

from mlsd.cli import app


@pytest.fixture
def refused_run(tmp_path: Path) -> RefusedRun:
    """``check(system, build, reason, where)``: writes the files with ``build`` under
    ``tmp_path/in``, runs ``mlsd run system --data ...`` and asserts exit 2, no traceback, one
    ``error:`` line matching the regex ``reason`` and naming ``tmp_path/in`` + ``where`` (the
    file, ``:line``, ``: field 'x'``), and nothing left beside the input (no run directory, no
    temporary sibling). Returns the error line."""

    def check(system: str, build: Builder, reason: str, where: str) -> str:
        data, test = build(tmp_path / "in")
        args = ["run", system, "--data", data, "--out", str(tmp_path / "run")]
        if test is not None:
            args += ["--test-data", test]
        result = CliRunner().invoke(app, args)
        output = result.output
        assert "Traceback" not in output, output
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), output
        errors = [line for line in output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, output
        assert re.search(reason, errors[0]), errors[0]
        assert f"{tmp_path / 'in'}{where}:" in errors[0], errors[0]
        assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]
        return errors[0]

    return check
