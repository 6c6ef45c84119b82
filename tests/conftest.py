"""Session fixtures: tiny offline models of real architectures and generated sample images."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never touch the hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# DOGIQA_FAIL_ON_SKIP=1 (set by .ci/run): every skip is a failure, and a missing ../shared stops the run.
FAIL_ON_SKIP = os.environ.get("DOGIQA_FAIL_ON_SKIP", "") not in ("", "0")
SHARED = Path(__file__).resolve().parents[1].parent / "shared"


# DOGIQA_TEST_MODEL_CACHE=DIR (benchmarks/mutation.py sets it): the session's tiny models are built once into DIR
# and reused by later sessions (delete DIR when the builders change).
MODEL_CACHE = os.environ.get("DOGIQA_TEST_MODEL_CACHE")


def built(tmp_path_factory: pytest.TempPathFactory, name: str, build: Callable[[Path], object]) -> Path:
    """The folder ``build(folder)`` writes: fresh per session, or from the model cache when one is set."""
    if not MODEL_CACHE:
        folder = tmp_path_factory.mktemp(name)
        build(folder)
        return folder
    folder = Path(MODEL_CACHE) / name
    if not (folder / "config.json").is_file():
        tmp = Path(tempfile.mkdtemp(prefix=name, dir=MODEL_CACHE))
        build(tmp)
        try:
            tmp.rename(folder)
        except OSError:  # another session finished first
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


def pytest_sessionstart(session: pytest.Session) -> None:
    if FAIL_ON_SKIP and not SHARED.is_dir():
        raise pytest.UsageError(f"DOGIQA_FAIL_ON_SKIP=1 but the reference data folder {SHARED} is missing")


def _skip_to_failure(report: pytest.CollectReport | pytest.TestReport) -> None:
    """Turn a skipped report (not an expected failure) into a failed one that keeps the skip reason."""
    if FAIL_ON_SKIP and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped, and DOGIQA_FAIL_ON_SKIP=1 turns skips into failures: {reason}"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> pytest.TestReport:
    report = yield
    _skip_to_failure(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> pytest.CollectReport:
    report = yield
    _skip_to_failure(report)
    return report


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread() -> None:
    """2 shared cores: keep torch to one thread (also makes float sums reproducible)."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_qwen2vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Qwen2-VL folder (seed 0; digit rows boosted so greedy answers are digits)."""
    from dogiqa.testing import build_tiny_qwen2vl

    return built(tmp_path_factory, "tiny-qwen2vl", lambda d: build_tiny_qwen2vl(d, seed=0, digit_scale=30.0))


@pytest.fixture(scope="session")
def tiny_idefics3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Idefics3 folder (seed 0; digit rows boosted so greedy answers are digits)."""
    from dogiqa.testing import build_tiny_idefics3

    return built(tmp_path_factory, "tiny-idefics3", lambda d: build_tiny_idefics3(d, seed=0, digit_scale=30.0))


@pytest.fixture(scope="session")
def sample_images_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of 4 small generated RGB images (PNG and JPEG, 64x48 .. 200x200)."""
    from dogiqa.testing.images import write_sample_images

    folder = tmp_path_factory.mktemp("sample-images")
    write_sample_images(folder)
    return folder


@pytest.fixture(scope="session")
def brightness_qwen2vl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Qwen2-VL whose answer is round(8 * brightness) (``dogiqa.testing.sensitive``), tau = 1."""
    from dogiqa.testing.sensitive import build_brightness_qwen2vl

    return built(tmp_path_factory, "brightness-qwen2vl", build_brightness_qwen2vl)


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
