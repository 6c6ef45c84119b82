"""Internal errors: exit code 3, the traceback in a log file named in one line, finished records kept."""

import pytest

from dogiqa.errors import EXIT_INTERNAL, InternalError, UsageError, internal_errors
from dogiqa.results import ImageResult
from dogiqa.sinks import ResultWriter, read_records


def test_a_bug_becomes_exit_3_with_a_log(tmp_path):
    lines: list[str] = []
    out = tmp_path / "r.jsonl"
    with pytest.raises(SystemExit) as stop:
        with internal_errors(echo=lines.append, log_dir=tmp_path / "logs"):
            with ResultWriter(out) as writer:
                writer.write(ImageResult(path="a.png", score=3.0))
                writer.write(ImageResult(path="b.png", score=4.0))
                {}["no such key"]  # a bug in our own code
    assert stop.value.code == EXIT_INTERNAL and isinstance(stop.value, InternalError)
    assert len(lines) == 1 and "internal error" in lines[0] and "KeyError" in lines[0]
    log = stop.value.log
    assert str(log) in lines[0] and log.parent == tmp_path / "logs"
    assert "Traceback" in log.read_text() and "no such key" in log.read_text()
    assert [r.path for r in read_records(out)] == ["a.png", "b.png"]  # finished records flushed


def test_user_errors_and_passthrough_are_not_internal(tmp_path):
    with pytest.raises(UsageError):
        with internal_errors(echo=lambda m: None, log_dir=tmp_path):
            raise UsageError("bad option", setting="--x")

    class Exit(RuntimeError):
        pass

    with pytest.raises(Exit):
        with internal_errors(echo=lambda m: None, passthrough=(Exit,), log_dir=tmp_path):
            raise Exit()
    with pytest.raises(KeyboardInterrupt):
        with internal_errors(echo=lambda m: None, log_dir=tmp_path):
            raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
