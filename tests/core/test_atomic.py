"""Atomic outputs: a file appears whole or not at all; leftovers of killed runs are skipped, not fatal."""

import json
import os
import subprocess
import sys
import warnings

import pytest
from PIL import Image

from dogiqa.atomic import atomic_open, atomic_save_image, atomic_write_text, read_json
from dogiqa.report.table import table_from_metrics_files


def test_replace_is_all_or_nothing(tmp_path):
    target = tmp_path / "metrics.json"
    atomic_write_text(target, '{"srcc": 0.5}')
    with pytest.raises(RuntimeError):
        with atomic_open(target) as fh:
            fh.write('{"srcc": 0.9')  # half written, then the writer dies
            raise RuntimeError("killed")
    assert json.loads(target.read_text()) == {"srcc": 0.5}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temp file left behind
    atomic_write_text(target, '{"srcc": 0.9}')
    assert json.loads(target.read_text()) == {"srcc": 0.9}


def test_permissions_like_a_plain_write(tmp_path):
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    atomic = atomic_write_text(tmp_path / "atomic.txt", "x")
    assert atomic.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777


def test_kill_9_mid_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "table.md"
    atomic_write_text(target, "old\n")
    code = (
        "import os, sys\n"
        "from dogiqa.atomic import atomic_open\n"
        f"with atomic_open({str(target)!r}) as fh:\n"
        "    fh.write('new' * 1000); fh.flush()\n"
        "    os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ}, capture_output=True, timeout=120)
    assert proc.returncode == -9
    assert target.read_text() == "old\n"


def test_image_save(tmp_path):
    path = atomic_save_image(Image.new("RGB", (3, 2), (1, 2, 3)), tmp_path / "o.png")
    assert Image.open(path).getpixel((0, 0)) == (1, 2, 3)


def test_empty_or_corrupt_metrics_files_are_skipped_with_a_warning(tmp_path):
    (tmp_path / "metrics-koniq-a.json").write_text("")  # left by an older version killed mid-write
    (tmp_path / "metrics-koniq-b.json").write_text('{"srcc": 0.')
    good = {"dataset": "koniq", "method": "good", "srcc": 0.8, "plcc": 0.7, "n": 10}
    (tmp_path / "metrics-koniq-c.json").write_text(json.dumps(good))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert read_json(tmp_path / "metrics-koniq-a.json") is None
        table = table_from_metrics_files(sorted(tmp_path.glob("metrics-*.json")))
    messages = " ".join(str(w.message) for w in caught)
    assert "empty" in messages and "corrupt" in messages and "metrics-koniq-b.json" in messages
    assert "good" in table.to_markdown()
