"""Command-line options shared by `score`, `show` and `eval` (one definition each)."""

from __future__ import annotations

import typer

from dogiqa.presets import PRESETS

PRESET_HELP = "Pipeline preset: " + "; ".join(f"{k}: {v['description']}" for k, v in PRESETS.items())

PRESET = typer.Option("recommended", "--preset", "-p", help=PRESET_HELP)
MODEL = typer.Option(None, "--model", "-m", help="Hub id or local folder of the VLM.")
BACKEND = typer.Option(None, help="auto | transformers | mplug_owl3 | openai.")
SEGMENTER = typer.Option(None, help="auto | sam2 | felzenszwalb | slic | none.")
STANDARD = typer.Option(None, help="word | number | sentence | path to a .json/.yaml standard.")
LEVELS = typer.Option(None, help="Number of levels K of the standard (word: 3, 5, 7, 9).")
READOUT = typer.Option(None, help="int | expected | qalign | qbench.")
AGGREGATION = typer.Option(None, help="paper | code | global | local | mean.")
C_MAX = typer.Option(None, help="c_max of the paper aggregation (default 71, SPAQ).")
MIN_AREA = typer.Option(None, help="Minimum region area in pixels (default 1000).")
CROP_MODE = typer.Option(None, help="bbox (the paper) | mask (black outside the mask; ablation).")
DEVICE = typer.Option(None, help="cpu | cuda | cuda:1 | mps ...")
DTYPE = typer.Option(None, help="auto | float32 | float16 | bfloat16.")
BATCH_SIZE = typer.Option(None, help="Crops per model forward pass.")
CHUNK_SIZE = typer.Option(None, help="Images whose crops are batched together (default 8).")
MAX_BATCH_TOKENS = typer.Option(None, help="Token budget of one forward pass (default 32768).")
PREFIX_CACHE = typer.Option(
    None, "--prefix-cache/--no-prefix-cache", help="Reuse the KV cache of the prompt before the image."
)
REVISION = typer.Option(None, help="Model revision (branch, tag or commit) on the hub.")
MAX_PIXELS = typer.Option(None, help="Refuse images with more pixels (decompression bombs).")
TRUST_REMOTE_CODE = typer.Option(False, help="Allow a model's own Python code from the hub.")
PAPER_COMPAT = typer.Option(
    None, "--paper-compat/--no-paper-compat", help="Invalid answers score 1, like the authors' code."
)
SCORER = typer.Option(None, help="mllm (default) | niqe | brisque | piqe | clipiqa.")
CLIP_MODEL = typer.Option(None, help="CLIP hub id or local folder for --scorer clipiqa.")
OWL3_MASK = typer.Option(None, help="mPLUG-Owl3: paper (the original's mask) | fixed.")
SAM2_MODEL = typer.Option(None, help="SAM2 hub id or local folder.")
SMALL_REGIONS = typer.Option(None, help="SAM2 small-region step: skip (CPU, default) | fill.")
SAM2_PRESET = typer.Option(None, help="SAM2 generator parameters: paper (default) | sam2-default.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bar or table.")
BASE_URL = typer.Option(None, help="--backend openai: the server's API root, e.g. http://HOST:8000/v1.")
API_KEY_ENV = typer.Option(None, help="--backend openai: variable holding the API key (OPENAI_API_KEY).")
CONCURRENCY = typer.Option(None, help="--backend openai: requests in flight (default 8).")
TIMEOUT = typer.Option(None, help="--backend openai: seconds per request (default 60).")
MAX_RETRIES = typer.Option(None, help="--backend openai: retries on 429/5xx/timeouts (default 5).")
