"""``python -m dogiqa.cli``."""

from dogiqa.cli import app

app()
