"""The registry and the skeleton every system package follows (docs/architecture.md)."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

import mlsd
from mlsd.runner import Pipeline
from mlsd.systems import SYSTEMS, System, UnknownSystemError, get_system, runnable_system

SYSTEMS_DIR = Path(mlsd.__file__).parent / "systems"
SKELETON = (
    "world",
    "datasets",
    "features",
    "model",
    "evaluation",
    "serving",
    "monitoring",
    "system",
)
RUNNING = [s for s in SYSTEMS.values() if s.package is not None]


def test_unknown_and_planned_systems_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(UnknownSystemError, match="the systems are"):
        get_system("nope")
    planned = System("chapter-12", 12, "A Later Chapter", "a system not built yet", None)
    monkeypatch.setitem(SYSTEMS, planned.name, planned)
    with pytest.raises(UnknownSystemError, match="does not run yet"):
        runnable_system(planned.name)


@pytest.mark.parametrize("info", RUNNING, ids=lambda s: s.name)
def test_running_systems_follow_the_skeleton(info: object) -> None:
    from mlsd.systems import System

    assert isinstance(info, System) and info.package is not None
    package = SYSTEMS_DIR / info.package
    allowed = re.compile(rf"^(__init__|commands|({'|'.join(SKELETON)})(_[a-z0-9_]+)?)\.py$")
    names = sorted(p.name for p in package.glob("*.py"))
    strays = [n for n in names if not allowed.match(n)]
    assert not strays, f"{info.name}: files outside the skeleton: {strays}"
    for required in ("__init__.py", "model.py", "serving.py", "system.py"):
        assert required in names, f"{info.name} has no {required}"
    for path in package.glob("*.py"):  # HTTP lives only under mlsd.api
        tree = ast.parse(path.read_text())
        imported = {
            (node.module or "") if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        http = {m for m in imported if m.split(".")[0] in ("fastapi", "starlette", "pydantic")}
        assert not http, f"{path.name} imports {http}: HTTP belongs in mlsd/api/routes/"
        assert not any(m.startswith("mlsd.api") for m in imported), f"{path.name} imports mlsd.api"


@pytest.mark.parametrize("info", RUNNING, ids=lambda s: s.name)
def test_running_systems_expose_pipeline_scorer_router_and_models(info: object) -> None:
    import importlib

    from mlsd.systems import System

    assert isinstance(info, System) and info.package is not None
    pipeline = info.pipeline()
    assert isinstance(pipeline, Pipeline) and pipeline.title
    assert callable(info.module("serving").load_scorer)
    assert info.module("model").contract_cases()
    router = importlib.import_module(f"mlsd.api.routes.{info.package}")
    assert callable(router.make_served_system)


def test_building_a_pipeline_never_imports_fastapi() -> None:
    code = (
        "import sys\n"
        "from mlsd.systems import SYSTEMS\n"
        "for s in SYSTEMS.values():\n"
        "    if s.package: s.pipeline()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('fastapi', 'uvicorn'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300
    )
    assert out.stdout.strip() == "", f"mlsd run imports {out.stdout.strip()}"
