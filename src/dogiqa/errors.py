"""The exceptions every stage raises for conditions a user can act on, and the CLI's exit codes.

Exit codes (``dogiqa`` commands): 0 every input scored; 1 at least one input failed (its record says why);
2 usage error: a bad option or configuration, a model/segmenter that cannot be loaded, a server that cannot
serve the chosen method (reported before any image is scored); 3 internal error: a bug in dogiqa (every
finished record is flushed first; the traceback goes to a log file named in the message).
"""

from __future__ import annotations

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
