"""The ``dogiqa`` command line: a thin shell over :mod:`dogiqa.config` and the Python API.

Each command lives in its own module; the options they share are defined once in :mod:`dogiqa.cli.options`.
Every command validates its whole configuration before it imports or loads any model, segmenter or image.

Exit codes (:mod:`dogiqa.errors`): 0 every image scored; 1 at least one image failed (its record says why);
2 usage error (a bad option, an unloadable model), printed as one line without a traceback; 3 internal error
(a bug: one line naming the log file with the traceback).
Nothing outside this package imports it.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from dogiqa.errors import EXIT_USAGE, UsageError, internal_errors

_PASSTHROUGH = (typer.TyperException, typer.Exit, typer.Abort, KeyboardInterrupt)


class _Group(TyperGroup):
    """Usage errors (ours and click's) as one line on stderr, exit 2; never a traceback."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None, standalone_mode: bool = True,
             **extra: Any) -> Any:  # fmt: skip
        from dogiqa.pipeline import allow_worker_processes

        allow_worker_processes()  # the command is the program: --segment-processes may default to automatic
        try:
            return self._run(args, prog_name, complete_var, standalone_mode, **extra)
        finally:
            allow_worker_processes(False)  # an in-process caller (a test, a notebook) gets its default back

    def _run(self, args: Any, prog_name: Any, complete_var: Any, standalone_mode: bool, **extra: Any) -> Any:
        try:
            with internal_errors(lambda m: typer.echo(m, err=True), passthrough=_PASSTHROUGH):  # a bug: exit 3
                rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = rv if isinstance(rv, int) else 0
        except typer.TyperException as exc:  # typer's own usage errors (unknown option, missing argument ...)
            ctx = getattr(exc, "ctx", None)
            if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
                typer.echo(ctx.get_help(), err=True)
            else:
                typer.echo(f"error: {_typer_message(exc)}", err=True)
            code = exc.exit_code
        except UsageError as exc:
            typer.echo(f"error: {exc}", err=True)
            code = exc.exit_code
        except typer.Abort:
            typer.echo("aborted", err=True)
            code = 130
        if standalone_mode:
            sys.exit(code)
        return code

    def get_help_option(self, ctx: Any) -> Any:
        from dogiqa.cli.options import hide_type

        return hide_type(super().get_help_option(ctx))


def _typer_message(exc: typer.TyperException) -> str:
    text = " ".join(exc.format_message().split())
    ctx = getattr(exc, "ctx", None)
    if exc.exit_code == EXIT_USAGE and ctx is not None:
        text += f" (see {ctx.command_path} --help)"
    return text


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    help="Training-free image quality assessment with multimodal LLMs (Dog-IQA and beyond).\n\n"
    "Exit codes: 0 all scored; 1 some inputs failed (error records); 2 usage error; 3 internal error.",
    context_settings={"max_content_width": 100},
)


def _register() -> None:
    from dogiqa.cli.config import config_command
    from dogiqa.cli.eval import eval_command
    from dogiqa.cli.metrics import metrics
    from dogiqa.cli.options import Command
    from dogiqa.cli.presets import presets_command
    from dogiqa.cli.score import score
    from dogiqa.cli.select import select_command
    from dogiqa.cli.serve import serve
    from dogiqa.cli.show import show

    for name, func in [("score", score), ("show", show), ("eval", eval_command), ("metrics", metrics),
                       ("presets", presets_command), ("config", config_command), ("serve", serve),
                       ("select", select_command)]:  # fmt: skip
        app.command(name, cls=Command)(func)


_register()


def main() -> None:  # pragma: no cover
    app()


__all__ = ["app", "main"]
