"""Screenshots of the report page and of one quality map, from the demo photos scored with PIQE over SLIC.

Run: ``OMP_NUM_THREADS=1 python benchmarks/report_screenshots.py [--out benchmarks/results]`` (needs chromium).
Writes ``report-page.png`` (the page in headless Chromium, 1400x1000) and ``quality-map.png`` (one picture).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
from pathlib import Path

from PIL import Image

from dogiqa.api import DogIQA
from dogiqa.demo import write_demo_images
from dogiqa.report.html import ReportWriter
from dogiqa.testing.browser import screenshot


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args()
    args.out = args.out.resolve()
    with tempfile.TemporaryDirectory() as tmp:
        os.chdir(tmp)  # records name the photos relative to here: demo-images/...
        images = write_demo_images("demo-images")
        iqa = DogIQA(scorer="piqe", segmenter="slic", keep_masks=True)
        writer = ReportWriter(Path(tmp) / "report", title="dogiqa demo: PIQE over SLIC regions")
        pictures = [writer.add(result) for result in iqa.score_many(images)]
        page = writer.close()
        args.out.mkdir(parents=True, exist_ok=True)
        shot = screenshot(page.as_uri() + "#sort=score:asc", args.out / "report-page.png", 1400, 1000)
        mixed = next(p for p in pictures if p is not None and "jpeg5" in p.name)
        picture = Image.open(mixed)
        picture.thumbnail((800, 800))
        picture.save(args.out / "quality-map.png", optimize=True)
        shutil.copy(page, args.out / "report-example.html")  # the page alone (thumbnails embedded)
    print(f"{shot}\n{args.out / 'quality-map.png'}\n{args.out / 'report-example.html'}")


if __name__ == "__main__":
    main()
