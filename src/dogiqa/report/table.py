"""A summary table shaped like the paper's Table 2: rows are methods or presets, columns datasets,
cells "SRCC / PLCC". Written as Markdown and CSV.

>>> t = SummaryTable()
>>> t.add("Dog-IQA (ours)", "livec", 0.70410, 0.70287)
>>> print(t.to_markdown())
| method | LIVEC |
| --- | --- |
| Dog-IQA (ours) | 0.704 / 0.703 |
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dogiqa.atomic import atomic_write_text, read_json

# Column order and titles of the paper's Table 2; other datasets follow in the order first seen.
TITLES = {"koniq": "KonIQ", "livec": "LIVEC", "spaq": "SPAQ", "kadid": "KADID", "agiqa": "AGIQA-3k"}

# The paper's published whole-dataset numbers (spec §6), to print beside ours.
PAPER_TABLE2: dict[str, dict[str, tuple[float, float]]] = {
    "NIQE": {
        "koniq": (0.551, 0.488),
        "livec": (0.463, 0.491),
        "spaq": (0.703, 0.671),
        "kadid": (0.379, 0.389),
        "agiqa": (0.529, 0.520),
    },
    "BRISQUE": {
        "koniq": (0.705, 0.707),
        "livec": (0.561, 0.598),
        "spaq": (0.484, 0.481),
        "kadid": (0.330, 0.370),
        "agiqa": (0.493, 0.533),
    },
    "CLIP-IQA": {
        "koniq": (0.695, 0.727),
        "livec": (0.612, 0.594),
        "spaq": (0.738, 0.735),
        "kadid": (0.500, 0.520),
        "agiqa": (0.658, 0.714),
    },
    "Dog-IQA": {
        "koniq": (0.819, 0.811),
        "livec": (0.756, 0.752),
        "spaq": (0.902, 0.897),
        "kadid": (0.612, 0.624),
        "agiqa": (0.823, 0.797),
    },
}


@dataclass
class SummaryTable:
    """method -> dataset -> (srcc, plcc), keeping insertion order of methods."""

    decimals: int = 3
    cells: dict[str, dict[str, tuple[float | None, float | None]]] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # method -> footnote

    def add(self, method: str, dataset: str, srcc: float | None, plcc: float | None) -> None:
        self.cells.setdefault(method, {})[dataset] = (srcc, plcc)

    def add_report(self, method: str, report: Mapping[str, Any]) -> None:
        """Add an :func:`~dogiqa.evaluate.evaluate_predictions` report (``dataset``, ``srcc``, ``plcc``)."""
        self.add(method, str(report["dataset"]), report.get("srcc"), report.get("plcc"))

    def add_paper(self, methods: Iterable[str] | None = None, suffix: str = " (paper)") -> None:
        """Add the paper's published rows for the datasets already in the table (all five if empty)."""
        wanted = set(self.datasets) or set(TITLES)
        for method in methods or PAPER_TABLE2:
            for ds, (s, p) in PAPER_TABLE2[method].items():
                if ds in wanted:
                    self.add(method + suffix, ds, s, p)

    @property
    def datasets(self) -> list[str]:
        seen = [ds for row in self.cells.values() for ds in row]
        known = [ds for ds in TITLES if ds in seen]
        return known + [ds for ds in dict.fromkeys(seen) if ds not in TITLES]

    def _fmt(self, value: float | None) -> str:
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            return "-"
        return f"{value:.{self.decimals}f}"

    def cell(self, method: str, dataset: str) -> str:
        if dataset not in self.cells.get(method, {}):
            return "-"
        s, p = self.cells[method][dataset]
        return f"{self._fmt(s)} / {self._fmt(p)}"

    def rows(self) -> list[list[str]]:
        """Header row + one row per method, cells "SRCC / PLCC"."""
        header = ["method"] + [TITLES.get(ds, ds) for ds in self.datasets]
        return [header] + [[m] + [self.cell(m, ds) for ds in self.datasets] for m in self.cells]

    def to_markdown(self) -> str:
        rows = self.rows()
        lines = ["| " + " | ".join(rows[0]) + " |", "| " + " | ".join("---" for _ in rows[0]) + " |"]
        lines += ["| " + " | ".join(r) + " |" for r in rows[1:]]
        notes = [f"- {m}: {n}" for m, n in self.notes.items() if m in self.cells]
        return "\n".join(lines + ([""] + notes if notes else []))

    def to_csv(self, split: bool = False) -> str:
        """CSV text: cells "SRCC / PLCC", or with ``split`` two numeric columns per dataset."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        if not split:
            writer.writerows(self.rows())
            return buf.getvalue()
        writer.writerow(["method"] + [f"{ds}_{m}" for ds in self.datasets for m in ("srcc", "plcc")])
        for method, row in self.cells.items():
            values = [row.get(ds, (None, None)) for ds in self.datasets]
            writer.writerow([method] + ["" if v is None else v for pair in values for v in pair])
        return buf.getvalue()

    def write(self, stem: Path | str) -> tuple[Path, Path]:
        """Write ``<stem>.md`` and ``<stem>.csv``; returns both paths."""
        stem = Path(stem)
        stem.parent.mkdir(parents=True, exist_ok=True)
        md, cs = stem.with_suffix(".md"), stem.with_suffix(".csv")
        atomic_write_text(md, self.to_markdown() + "\n")
        atomic_write_text(cs, self.to_csv())
        return md, cs


def table_from_metrics_files(paths: Iterable[Path | str], decimals: int = 3) -> SummaryTable:
    """Build a table from metrics JSON files (each a report; the row is its ``method``/``preset`` or
    the file's parent folder name)."""
    table = SummaryTable(decimals=decimals)
    for path in paths:
        path = Path(path)
        report = read_json(path, "metrics file")  # an empty/corrupt leftover is skipped with a warning
        if not isinstance(report, dict):
            continue
        method = str(report.get("method") or report.get("preset") or path.parent.name)
        table.add_report(method, report)
        note = method_note(report)
        if note:
            table.notes[method] = note
    return table


def method_note(report: Mapping[str, Any]) -> str:
    """What a reader must know about a row: the sign convention and the baselines' provenance."""
    scorer = (report.get("config") or {}).get("scorer")
    parts = ["lower is better: SRCC/PLCC of the negated score"] if report.get("negated") else []
    if scorer == "brisque":
        parts.append("BRISQUE with OpenCV's LIVE-trained model (the MATLAB release's allmodel is not available)")
    if scorer == "clipiqa":
        parts.append(
            "CLIP-IQA on the checkpoint in the run's config; the published CLIP-IQA numbers used "
            "OpenAI's ResNet-50 CLIP with its positional embedding removed"
        )
    return "; ".join(parts)
