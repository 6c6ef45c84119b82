"""Labelled IQA datasets in their official layouts, behind one ``load_dataset(name, root, labels)``.

>>> ds = load_dataset("livec", labels="../shared/iqa-labels/livec")   # doctest: +SKIP
>>> len(ds), ds.higher_is_better
(1169, True)
"""

from __future__ import annotations

from pathlib import Path

from dogiqa.datasets.base import DatasetError, LabelItem, LabelledDataset
from dogiqa.registry import Registry

DATASETS = Registry(
    "dataset",
    {
        "koniq": "dogiqa.datasets.koniq:load",
        "spaq": "dogiqa.datasets.spaq:load",
        "livec": "dogiqa.datasets.livec:load",
        "agiqa": "dogiqa.datasets.agiqa:load",
        "kadid": "dogiqa.datasets.kadid:load",
        "generic": "dogiqa.datasets.generic:load",
        "meta-info": "dogiqa.datasets.generic:load_meta_info",
    },
)

ALIASES = {
    "koniq10k": "koniq",
    "koniq-10k": "koniq",
    "live-challenge": "livec",
    "livechallenge": "livec",
    "live_challenge": "livec",
    "clive": "livec",
    "agiqa3k": "agiqa",
    "agiqa-3k": "agiqa",
    "kadid10k": "kadid",
    "kadid-10k": "kadid",
    "csv": "generic",
    "pyiqa": "meta-info",
    "meta_info": "meta-info",
}

def canonical_name(name: str) -> str:
    key = name.strip().lower()
    return ALIASES.get(key, key)


def list_datasets() -> list[str]:
    return DATASETS.names()


def load_dataset(
    name: str, root: Path | str | None = None, labels: Path | str | None = None
) -> LabelledDataset:
    """Load a dataset by name. ``root``: the image folder (None: labels only); ``labels``: the label file or
    the folder holding it (None: looked for under ``root``)."""
    return DATASETS.resolve(canonical_name(name))(root=root, labels=labels)


__all__ = ["DatasetError", "LabelItem", "LabelledDataset", "load_dataset", "list_datasets", "canonical_name"]
