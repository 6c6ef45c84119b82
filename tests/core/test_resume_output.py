"""An existing output is never overwritten by accident; a resumed one keeps finished records once."""

import os

import pytest

from dogiqa.errors import UsageError
from dogiqa.results import ImageResult
from dogiqa.sinks import OutputExistsError, ResultWriter, prepare_output, read_records

ODD = os.fsdecode(b"/data/caf\xe9.png")


def _write(path, records):
    with ResultWriter(path) as w:
        for r in records:
            w.write(r)


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_resume_keeps_finished_drops_failed_and_torn(tmp_path, suffix):
    out = tmp_path / f"r{suffix}"
    assert prepare_output(out) == set()  # nothing there yet
    _write(out, [
        ImageResult(path="a.png", score=3.0),
        ImageResult(path="b.png", error="b.png: loading failed: file is empty (0 bytes)"),
        ImageResult(path=ODD, score=5.0),
        ImageResult(path="a.png", score=3.0),  # a duplicate from an earlier resume
        ImageResult(path="c.png", score=4.0),
    ])  # fmt: skip
    data = out.read_bytes()
    out.write_bytes(data[: len(data) - 7])  # kill -9 mid-line: the last record is torn
    with pytest.raises(OutputExistsError, match="--resume.*--overwrite"):
        prepare_output(out)
    assert out.read_bytes() == data[: len(data) - 7]  # untouched
    with pytest.raises(UsageError, match="contradict"):
        prepare_output(out, resume=True, overwrite=True)
    done = prepare_output(out, resume=True)
    assert done == {"a.png", ODD}  # c.png was torn, b.png failed: both are scored again
    with ResultWriter(out, append=True) as w:
        w.write(ImageResult(path="b.png", score=2.0))
        w.write(ImageResult(path="c.png", score=4.0))
    if suffix == ".jsonl":
        assert [r.path for r in read_records(out)] == ["a.png", ODD, "b.png", "c.png"]
    else:
        lines = out.read_text(encoding="utf-8").splitlines()
        assert lines[0].startswith("path,") and len(lines) == 5
    assert prepare_output(out, overwrite=True) == set()
