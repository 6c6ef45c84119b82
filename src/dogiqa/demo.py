"""``make demo``: score a few public-domain photos and write records and a report, on any machine.

With a VLM (``--model`` a local folder, a hub id in the Hugging Face cache, or the hub reachable) it runs
``dogiqa score`` with the ``recommended`` preset. Without one it says so in one line and scores the same photos
with PIQE over SLIC regions, which needs no download, so a first run always ends with records and a report.
Only the demo falls back: ``dogiqa score`` itself never switches scorer.

``python -m dogiqa.demo [--images DIR] [--out DIR] [--model ID_OR_DIR] [-- extra dogiqa score options]``
"""

from __future__ import annotations

import argparse
import io
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from PIL import Image, ImageFilter

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")
FALLBACK_OPTIONS = ("--scorer", "piqe", "--segmenter", "slic")  # classical, mix-grained, nothing to download


def write_demo_images(folder: str | Path, photos: Sequence[str] = PHOTOS) -> list[Path]:
    """Write each photo as a clean PNG, a blurred PNG and a JPEG at quality 5 (a quality ladder to score)."""
    from skimage import data

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in photos:
        img = Image.fromarray(getattr(data, name)()).convert("RGB")
        variants = {
            f"{name}.png": img,
            f"{name}-blur.png": img.filter(ImageFilter.GaussianBlur(4)),
        }
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=5)
        variants[f"{name}-jpeg5.png"] = Image.open(buf).convert("RGB")
        for file_name, variant in variants.items():
            variant.save(folder / file_name)
            written.append(folder / file_name)
    return written


def vlm_unavailable(model: str) -> str | None:
    """Why ``model`` cannot be loaded here, found without loading it (None: it can be tried).

    A local folder needs a ``config.json``; a hub id must be in the Hugging Face cache or the hub reachable.
    """
    folder = Path(model).expanduser()
    if folder.exists():
        return None if (folder / "config.json").is_file() else f"{model} has no config.json"
    if "/" not in model.strip("/") or model.startswith((".", "/", "~")):
        return f"{model} is not a folder here"
    from huggingface_hub import try_to_load_from_cache

    from dogiqa.hub import hub_reachable

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return None
    if hub_reachable():
        return None
    return f"{model} is not in the Hugging Face cache and the hub cannot be reached"


def score_command(images: Path, out: Path, options: Sequence[str]) -> list[str]:
    """The ``dogiqa score`` command line the demo runs (records + report under ``out``)."""
    return [
        "dogiqa",
        "score",
        str(images),
        "--output",
        str(out / "scores.jsonl"),
        "--report",
        str(out / "report"),
        *options,
    ]


def _run(cmd: list[str]) -> int:
    """Run ``dogiqa ...`` with this interpreter (the console script may not be on PATH)."""
    return subprocess.call([sys.executable, "-m", "dogiqa.cli", *cmd[1:]])


def run_demo(
    images: Path, out: Path, model: str | None = None, extra: Sequence[str] = (), photos: Sequence[str] = PHOTOS
) -> int:
    """Write the photos, score them with a VLM when one can be loaded, else with PIQE; returns the exit code."""
    from dogiqa.presets import DEFAULT_MODEL  # the recommended preset's model

    print(f"writing {len(photos) * 3} demo photos (scikit-image, public domain) to {images}/", flush=True)
    write_demo_images(images, photos)
    name = model or DEFAULT_MODEL
    reason = vlm_unavailable(name)
    vlm_cmd = score_command(images, out, [*(["--model", model] if model else []), *extra])
    if reason is None:
        print(f"scoring with the VLM {name}: {shlex.join(vlm_cmd)}", flush=True)
        code = _run(vlm_cmd)
        if code != 2:  # 2: the model could not be loaded after all (the error above says why)
            return code
        reason = "see the error above"
    print(f"no VLM could be loaded ({reason}): scoring with PIQE over SLIC regions instead (no download)")
    fallback = score_command(images, out, FALLBACK_OPTIONS)
    print(f"running: {shlex.join(fallback)}", flush=True)
    code = _run(fallback)
    print(f"records: {out / 'scores.jsonl'}; report: {out / 'report' / 'index.html'} (a folder; open the page)")
    print(
        "to score with a VLM: make demo MODEL=/path/to/Qwen2.5-VL-7B-Instruct (a local model folder), or with "
        f"network access: {shlex.join(score_command(images, out, ['--preset', 'recommended']))}"
    )
    return code


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m dogiqa.demo", description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=Path, default=Path("demo-images"), help="where to write the photos")
    ap.add_argument("--out", type=Path, default=Path("demo-out"), help="records and report go here")
    ap.add_argument("--model", default=None, help="VLM hub id or local folder (default: the recommended preset's)")
    ap.add_argument("--photos", nargs="+", choices=PHOTOS, default=list(PHOTOS), help="which photos")
    ap.add_argument("--write-only", action="store_true", help="only write the photos")
    ap.add_argument("extra", nargs=argparse.REMAINDER, help="-- then more `dogiqa score` options for the VLM run")
    args = ap.parse_args(argv)
    if args.write_only:
        for path in write_demo_images(args.images, args.photos):
            print(path)
        return 0
    extra = args.extra[1:] if args.extra[:1] == ["--"] else args.extra
    return run_demo(args.images, args.out, args.model, extra, args.photos)


if __name__ == "__main__":
    sys.exit(main())
