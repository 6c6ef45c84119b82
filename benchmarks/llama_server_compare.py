"""llama.cpp's llama-server vs the transformers backend on the same tiny Qwen2-VL: per-image differences.

Starts ../shared/peers/llama-server on 127.0.0.1 (as tests/serve/test_llama_server.py does), scores the sample
images with the ``recommended`` preset (Felzenszwalb regions) through both backends, prints per image the
final score of each and their difference, for the ``int`` and ``expected`` readouts, and the wall time.

    OMP_NUM_THREADS=1 python benchmarks/llama_server_compare.py
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "tests"), str(ROOT / "tests" / "serve")]


def main() -> None:
    from test_llama_server import PEER, _healthy, _start, _stop

    from dogiqa.api import DogIQA
    from dogiqa.backends import load_backend
    from dogiqa.scorers.mllm import MLLMScorer
    from dogiqa.testing.images import write_sample_images

    folder = Path(tempfile.mkdtemp(prefix="dogiqa-llama-"))
    write_sample_images(folder)
    paths = sorted(folder.iterdir())
    proc, root = _start(folder / "server.log")
    try:
        assert _healthy(proc, root), (folder / "server.log").read_text()[-2000:]
        local_backend = load_backend(str(PEER / "model-hf"), "transformers", device="cpu")
        for readout in ("int", "expected"):
            scorer = MLLMScorer(local_backend, standard="word", levels=7, readout=readout)
            local = DogIQA.from_preset("recommended", scorer=scorer, segmenter="felzenszwalb")
            server = {"base_url": root + "/v1"}
            served = DogIQA.from_preset("recommended", model="m", backend="openai", readout=readout,
                                        segmenter="felzenszwalb", backend_options=server)  # fmt: skip
            t0 = time.perf_counter()
            a = list(local.score_many(paths))
            t1 = time.perf_counter()
            b = list(served.score_many(paths))
            t2 = time.perf_counter()
            crops = sum(1 + len(r.regions) for r in a)
            print(f"{readout}: {crops} crops; transformers {t1 - t0:.2f} s, llama-server {t2 - t1:.2f} s")
            for x, y in zip(a, b, strict=True):
                same = [x.global_raw, *[r.raw for r in x.regions]] == [y.global_raw, *[r.raw for r in y.regions]]
                print(f"  {Path(x.path).name:20s} {x.score:.4f} {y.score:.4f} diff {abs(x.score - y.score):.4f} "
                      f"answers identical: {same}")  # fmt: skip
    finally:
        _stop(proc)


if __name__ == "__main__":
    main()
