"""Measured conformance of NIQE, BRISQUE and PIQE: the figures the README states, as maxima over each set.

Run: ``python benchmarks/conformance.py [--corpus N]`` (needs ``../shared/reference/baselines`` and, for
BRISQUE, opencv-contrib-python-headless). Prints one line per comparison: worst gap, its image, count.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from PIL import Image

from dogiqa.scorers.brisque import brisque
from dogiqa.scorers.niqe import niqe
from dogiqa.scorers.piqe import piqe
from dogiqa.testing.corpus import brisque_corpus

BASELINES = Path(__file__).resolve().parents[1] / ".." / "shared" / "reference" / "baselines"


def _rows() -> list[dict]:
    with open(BASELINES / "expected.csv", newline="") as fh:
        expected = {(r["folder"], r["image"]): r for r in csv.DictReader(fh)}
    with open(BASELINES / "crosscheck.csv", newline="") as fh:
        cross = {(r["folder"], r["image"]): r for r in csv.DictReader(fh)}
    return [{**expected[k], **cross[k], "path": BASELINES / "images" / k[0] / k[1]} for k in expected]


def _report(label: str, gaps: list[tuple[float, str]], unit: str = "", tol: float | None = 0.005) -> None:
    worst = max(gaps)
    over = f", {sum(g > tol for g, _ in gaps)} above {tol}" if tol is not None else ""
    print(f"{label:64s} max {worst[0]:.4f}{unit} ({worst[1]}), n = {len(gaps)}{over}")


def _opencv(ipp: bool):
    import cv2

    p = BASELINES / "params"
    model = cv2.quality.QualityBRISQUE_create(str(p / "brisque_model_live.yml"), str(p / "brisque_range_live.yml"))

    def score(img: Image.Image) -> float:
        cv2.ipp.setUseIPP(ipp)
        return float(model.compute(np.ascontiguousarray(np.asarray(img)[..., ::-1]))[0])

    return score


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--corpus", type=int, default=280, help="images of the generated BRISQUE corpus")
    args = ap.parse_args()
    rows = _rows()
    imgs = {r["image"] + "/" + r["folder"]: Image.open(r["path"]).convert("RGB") for r in rows}
    niqe_gaps, piqe_gaps, piqe_py = [], [], []
    for r in rows:
        key = r["image"] + "/" + r["folder"]
        if r["niqe_full_precision"]:
            ref = float(r["niqe_full_precision"])
            niqe_gaps.append((100 * abs(niqe(imgs[key]) - ref) / ref, key))
        p = piqe(imgs[key])
        if r["piqe"]:
            piqe_gaps.append((abs(p - float(r["piqe"])), key))
        piqe_py.append((abs(p - float(r["piqe_pypiqe"])), key))
    _report("NIQE vs MATLAB computequality (relative)", niqe_gaps, " %", tol=None)
    _report("PIQE vs MATLAB piqe() (published to 2 decimals)", piqe_gaps)
    _report("PIQE vs pypiqe", piqe_py)
    try:
        plain, ipp = _opencv(False), _opencv(True)
    except (ImportError, AttributeError) as exc:
        print(f"BRISQUE vs OpenCV skipped: {exc}")
        return
    corpus = list(brisque_corpus(args.corpus, seed=0, sizes=(32, 33, 40, 47, 48, 63, 64, 97, 128, 160, 256)))
    corpus += list(brisque_corpus(3, seed=2, sizes=(1000, 1500, 2000)))
    for label, images in (("calibration photos", list(imgs.items())), (f"generated corpus ({len(corpus)})", corpus)):
        ours = {k: brisque(v) for k, v in images}
        refs = {k: (plain(v), ipp(v)) for k, v in images}
        _report(f"BRISQUE vs OpenCV, IPP off, {label}", [(abs(ours[k] - refs[k][0]), k) for k in ours])
        _report(f"BRISQUE vs OpenCV, IPP on (pip default), {label}", [(abs(ours[k] - refs[k][1]), k) for k in ours])
        _report(f"OpenCV IPP on vs off, {label}", [(abs(refs[k][0] - refs[k][1]), k) for k in ours])


if __name__ == "__main__":
    main()
