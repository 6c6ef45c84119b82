"""The exceptions every stage raises for conditions a user can act on, and the CLI's exit codes.

Exit codes (``dogiqa`` commands): 0 every input scored; 1 at least one input failed (its record says why);
2 usage error: a bad option or configuration, a model/segmenter that cannot be loaded, a server that cannot
serve the chosen method (reported before any image is scored); 3 internal error: a bug in dogiqa (every
finished record is flushed first; the traceback goes to a log file named in the message).
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class DogIQAError(Exception):
    """Base class of the errors dogiqa raises on purpose (the message is meant for the user)."""


class UsageError(DogIQAError, ValueError):
    """A setting is wrong or cannot be served; ``setting`` names it as the user wrote it (flag, YAML key or
    keyword argument). The CLI prints one line and exits 2, before any model is loaded where possible."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, setting: str | None = None):
        super().__init__(message)
        self.setting = setting


class ServerCapabilityError(UsageError):
    """The server named by ``--base-url`` cannot serve this run: unreachable, unknown model, rejected key, or a
    missing capability the readout needs (log-probabilities, ``continue_final_message``). Raised on first
    contact, before any image is scored; the message names the URL (never its user-info) and the cause."""


class RemoteCodeError(UsageError):
    """A model needs its own Python code (``auto_map`` in its config) and ``--trust-remote-code`` was not given."""

    def __init__(self, model: str):
        super().__init__(
            f"model {model!r} needs its own Python code to load (its config points to custom code); dogiqa never "
            "runs a model's code unless you pass --trust-remote-code (only for a model you trust)",
            setting="--trust-remote-code",
        )


class InternalError(SystemExit):
    """Raised by :func:`internal_errors`: ends the process with exit code 3; ``log`` holds the traceback."""

    def __init__(self, log: Path):
        super().__init__(EXIT_INTERNAL)
        self.log = log


def write_crash_log(exc: BaseException, log_dir: str | Path | None = None) -> Path:
    """Write ``exc``'s traceback to ``dogiqa-internal-error-<time>-<pid>.log`` in ``log_dir`` (default: the
    ``DOGIQA_LOG_DIR`` environment variable, else the temporary folder) and return its path."""
    folder = Path(log_dir or os.environ.get("DOGIQA_LOG_DIR") or tempfile.gettempdir())
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / f"dogiqa-internal-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    log.write_text(f"dogiqa {' '.join(sys.argv)}\n{text}", encoding="utf-8", errors="backslashreplace")
    return log


@contextmanager
def internal_errors(
    echo: Callable[[str], None] | None = None,
    passthrough: tuple[type[BaseException], ...] = (),
    log_dir: str | Path | None = None,
) -> Iterator[None]:
    """Around a command: an unexpected exception (a bug in dogiqa, not a DogIQAError or one of
    ``passthrough``) writes its traceback to a log file, prints one line naming it and exits with code 3.

    Records already written stay (sinks flush each record and close in ``finally`` blocks before this runs).
    """
    try:
        yield
    except (DogIQAError, *passthrough):
        raise
    except Exception as exc:  # noqa: BLE001 - the whole point: no traceback on the console, exit 3
        log = write_crash_log(exc, log_dir)
        message = (
            f"internal error (a bug in dogiqa): {type(exc).__name__}: {' '.join(str(exc).split())[:300]}; "
            f"every finished record was written; traceback in {log}"
        )
        (echo or (lambda m: print(m, file=sys.stderr)))(message)
        raise InternalError(log) from exc
