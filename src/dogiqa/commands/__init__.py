"""CLI command functions; ``dogiqa.cli`` registers them on the typer app."""
