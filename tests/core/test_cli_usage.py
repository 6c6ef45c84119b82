"""Every usage error exits 2 with one line naming the option, before any model, segmenter or image loads."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dogiqa.cli import app
from dogiqa.testing.usage_errors import BadCall, bad_calls, prepare

SRC = Path(__file__).resolve().parents[2] / "src" / "dogiqa"
CASES = bad_calls(Path("TMP"))  # for the ids; each test rebuilds its case under tmp_path


@pytest.fixture
def loaders(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """A spy on everything that loads: backends, segmenters, scorers, pipelines, images."""
    import dogiqa.api
    import dogiqa.backends
    import dogiqa.io
    from dogiqa.registry import SCORERS, SEGMENTERS

    calls: list[str] = []

    def spy(name: str):
        def record(*args, **kwargs):
            calls.append(name)
            raise AssertionError(f"{name} was called by a usage error")

        return record

    monkeypatch.setattr(dogiqa.backends, "load_backend", spy("load_backend"))
    monkeypatch.setattr(SEGMENTERS, "build_accepting", spy("segmenter"))
    monkeypatch.setattr(SCORERS, "build_accepting", spy("scorer"))
    monkeypatch.setattr(dogiqa.api.DogIQA, "__init__", spy("DogIQA"))
    monkeypatch.setattr(dogiqa.io, "load_image", spy("load_image"))
    monkeypatch.setattr(dogiqa.api, "load_image", spy("load_image"))
    return calls


def test_the_table_is_broad():
    kinds = {c.kind for c in CASES}
    assert len(CASES) >= 25
    assert {"unknown value", "out of range", "bad suffix", "missing file", "inapplicable", "conflicting"} <= kinds


@pytest.mark.parametrize("index", range(len(CASES)), ids=[f"{c.kind}:{c.names}" for c in CASES])
def test_bad_invocation_exits_2_naming_the_option(index: int, tmp_path: Path, loaders: list[str]):
    prepare(tmp_path)
    case: BadCall = bad_calls(tmp_path)[index]
    res = CliRunner().invoke(app, case.args)
    out = res.output.strip()
    assert res.exit_code == 2, (case.args, out)
    assert "Traceback" not in out and (res.exception is None or isinstance(res.exception, SystemExit))
    assert len(out.splitlines()) == 1, out  # one line
    assert out.startswith("error: ") and case.names in out and case.hint in out, out
    assert loaders == []


def test_a_good_invocation_does_reach_the_loaders(tmp_path: Path, loaders: list[str]):
    """The spy is real: the same command without the mistake gets as far as building the pipeline."""
    prepare(tmp_path)
    res = CliRunner().invoke(app, ["score", str(tmp_path / "x.png"), "--crop-mode", "mask"])
    assert res.exit_code != 0 and loaders == ["DogIQA"]


def test_no_module_outside_the_cli_imports_it():
    offenders = []
    for path in SRC.rglob("*.py"):
        if "cli" in path.relative_to(SRC).parts[:1]:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(n == "dogiqa.cli" or n.startswith("dogiqa.cli.") for n in names):
                offenders.append(f"{path.relative_to(SRC)}:{node.lineno}")
    assert offenders == []


def test_the_scan_would_see_an_import(tmp_path: Path):
    tree = ast.parse("from dogiqa import cli\nimport dogiqa.cli.options\n")
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert len(found) == 2  # both spellings are Import/ImportFrom nodes the scan inspects
