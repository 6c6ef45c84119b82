from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from chat_server import ChatServer  # noqa: E402
from http_helpers import serve_iqa  # noqa: E402,F401 - the HTTP service tests' pipeline (a fixture)


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def module_chat_server() -> Iterator[ChatServer]:
    server = ChatServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[None]:
    """A local 2-CPU Ray cluster shared by a module's tests (workers import this checkout's src/)."""
    ray = pytest.importorskip("ray", reason="the Ray runner needs the ray extra: pip install -e .[ray]")
    from dogiqa.runners.ray import _runtime_env

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, runtime_env=_runtime_env(None, 1))
    try:
        yield None
    finally:
        ray.shutdown()
