"""Quality standards: the prompt text that tells the model what each level means (spec §2)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from dogiqa.backends.base import Prompt

# The original code indents continuation lines of its triple-quoted strings with 20 spaces.
_INDENT = " " * 20
_FOLLOW = "Please strictly follow the USER's format, otherwise the result will be invalid."
_HEAD = (
    "You are a helpful assistant to help me evaluate the quality of the image. You will be given standards "
    "about each quality level. The quality standard is list as follows:\n"
)
_HIGHER = "The higher the image quality, the higher the score should be."
_WORD_QUERY = (
    "Please evaluate the quality of the image and score in quality. Only tell me the number. Do not analysis the image."
)

WORD_LEVELS: dict[int, list[str]] = {
    3: ["Poor!", "Fair!", "Excellent!"],
    5: ["Poor!", "Bad!", "Fair!", "Good!", "Excellent!"],
    7: ["Very Bad!", "Poor!", "Bad!", "Fair!", "Good!", "Excellent!", "Perfect!"],
    9: ["Very Bad!", "Awful!", "Poor!", "Bad!", "Fair!", "Good!", "Very Good!", "Excellent!", "Perfect!"],
}
SENTENCE_LEVELS: list[str] = [
    "Bad! The overall quality of the image is bad and hard to accept.",
    "Poor! The overall quality of the image is poor, with obvious defects.",
    "Fair! The overall quality of the image is fair. There are certain merits but also some deficiencies.",
    "Good! The overall quality of the image is good, and it is satisfactory in many aspects.",
    "Excellent! The overall quality of the image is extremely excellent, and all aspects are perfect.",
]

Call = Literal["global", "local"]


@dataclass(frozen=True)
class Standard:
    """A quality standard: system text (with the level list) and query, K levels numbered 1..K."""

    name: str
    levels: int
    system: str
    query: str

    def prompt(self, call: Call = "global", paper_whitespace: bool = False) -> Prompt:
        """The user-turn prompt: `" " + system + "\\n" + [image] + "\\n" + query` (spec §2).

        With ``paper_whitespace`` the indentation that the authors' f-strings add before the image and the
        query is kept: 20 spaces for the global call, 24 for a local crop (reference/mplug-owl3-tiny).
        """
        indent = (" " * (20 if call == "global" else 24)) if paper_whitespace else ""
        return Prompt(before_image=" " + self.system + "\n" + indent, after_image="\n" + indent + self.query)

    @property
    def level_tokens(self) -> list[str]:
        return [str(i) for i in range(1, self.levels + 1)]


def _level_list(labels: list[str]) -> str:
    k = len(labels)
    return "".join(f"{k - j}: {labels[k - 1 - j]}\n" for j in range(k))


def _tail() -> str:
    return f"\n{_INDENT}{_HIGHER}\n{_INDENT}{_FOLLOW}"


def word_standard(levels: int = 7) -> Standard:
    if levels not in WORD_LEVELS:
        raise ValueError(f"the 'word' standard has 3, 5, 7 or 9 levels, not {levels}")
    system = _HEAD + _level_list(WORD_LEVELS[levels]) + _tail()
    return Standard("word", levels, system, _WORD_QUERY)


def number_standard(levels: int = 7) -> Standard:
    if levels < 2 or levels > 9:
        raise ValueError(f"the 'number' standard has 2..9 levels, not {levels}")
    system = "You are a helpful assistant to help me evaluate the quality of the image.\n" + _INDENT + _FOLLOW
    scale = ",".join(str(i) for i in range(1, levels + 1))
    query = (
        f"please evaluate the quality of the image and score in [{scale}]. Only tell me the number. "
        "Do not analysis the image."
    )
    return Standard("number", levels, system, query)


def sentence_standard(levels: int = 5) -> Standard:
    if levels != 5:
        raise ValueError(f"the 'sentence' standard has 5 levels, not {levels}")
    system = _HEAD + _level_list(SENTENCE_LEVELS) + _tail()
    query = (
        "Please evaluate the quality of the image and score in [1,2,3,4,5]. Only tell me the number. "
        "Do not analysis the image."
    )
    return Standard("sentence", 5, system, query)


STANDARDS = {"word": word_standard, "number": number_standard, "sentence": sentence_standard}


def list_standards() -> list[str]:
    return sorted(STANDARDS)


def get_standard(name: str = "word", levels: int | None = None) -> Standard:
    """A built-in standard by name and level count, or a user standard file (.json/.yaml)."""
    if name in STANDARDS:
        factory = STANDARDS[name]
        return factory() if levels is None else factory(levels)
    path = Path(name)
    if path.suffix.lower() in {".json", ".yaml", ".yml"}:
        return load_standard_file(path)
    raise ValueError(f"unknown standard {name!r}: choose one of {list_standards()} or a .json/.yaml file")


def load_standard_file(path: str | Path) -> Standard:
    """Read a custom standard: ``labels`` (worst..best, one per level) or ``system``; optional ``query``.

    Example (YAML)::

        name: my-scale
        labels: ["Unusable!", "Poor!", "Fair!", "Good!", "Great!"]
        query: Please evaluate the quality of the image and score in quality. Only tell me the number.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"standard file not found: {path}")
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
    else:
        import yaml

        data = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a standard file holds a mapping with 'labels' or 'system'")
    query = str(data.get("query", _WORD_QUERY))
    if "labels" in data:
        labels = [str(x) for x in data["labels"]]
        if not 2 <= len(labels) <= 9:
            raise ValueError(f"{path}: 'labels' needs 2..9 entries (each level must be one digit token)")
        system = _HEAD + _level_list(labels) + _tail()
        levels = len(labels)
    elif "system" in data and "levels" in data:
        system, levels = str(data["system"]), int(data["levels"])
    else:
        raise ValueError(f"{path}: give 'labels' (worst first) or both 'system' and 'levels'")
    return Standard(str(data.get("name", path.stem)), levels, system, query)
