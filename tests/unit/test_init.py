"""Importing mlsd makes OpenMP threads wait passively, unless the user chose otherwise."""

from __future__ import annotations

import os
import subprocess
import sys


def policy_after_import(env: dict[str, str]) -> str:
    code = "import os, mlsd; print(os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def test_openmp_threads_sleep_while_waiting_unless_set() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    assert policy_after_import(env) == "PASSIVE"
    assert policy_after_import({**env, "OMP_WAIT_POLICY": "ACTIVE"}) == "ACTIVE"
