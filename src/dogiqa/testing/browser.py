"""Headless Chromium for checking the HTML report in a real browser (Debian's ``chromium`` package)."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "chrome")


def find_chromium() -> str | None:
    """Path of a Chromium-family browser on PATH (or /usr/bin/chromium), else None."""
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


def _run(args: list[str], timeout: float) -> subprocess.CompletedProcess:
    browser = find_chromium()
    if browser is None:
        raise FileNotFoundError("no chromium on PATH (Debian: apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="dogiqa-chromium-") as profile:
        cmd = [
            browser,
            "--headless",
            "--no-sandbox",  # root in containers and CI
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",  # let the page's load handlers run before the dump
            *args,
        ]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=True)


def dump_dom(url: str, timeout: float = 120) -> str:
    """The page's DOM after its scripts ran (``chromium --headless --dump-dom``)."""
    return _run(["--dump-dom", url], timeout).stdout


def screenshot(url: str, out: Path | str, width: int = 1400, height: int = 1000, timeout: float = 120) -> Path:
    """A PNG screenshot of ``url`` at ``width`` x ``height``."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    _run([f"--screenshot={out}", f"--window-size={width},{height}", url], timeout)
    return out
