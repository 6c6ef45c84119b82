"""What each command gives a user: `metrics` numbers and exit codes, `presets` rows, `select`, `score`'s table,
summary line, messages and exit codes, `show`, `serve`'s settings, and every pipeline option reaching the
configuration that runs (records, `dogiqa config`).

No VLM here (the classical NIQE scorer, no model weights), so every command runs in-process in about a second.
Expected numbers come from scipy or from the README.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image
from scipy import stats
from typer.testing import CliRunner

from dogiqa.cli import app
from dogiqa.cli.options import PIPELINE
from dogiqa.config import KEYWORDS, PAPER_MODEL, flag_of, resolve_config

runner = CliRunner()
FAST = ["--scorer", "niqe", "--segmenter", "none", "--aggregation", "global"]


def invoke(*args: str, env: dict | None = None):
    return runner.invoke(app, list(args), env=env)


def text(res) -> str:
    return " ".join(res.output.split())


@pytest.fixture(scope="module")
def noisy(tmp_path_factory) -> list[Path]:
    """Four 96x96 images of increasing noise (NIQE can score them)."""
    folder = tmp_path_factory.mktemp("noisy")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(4):
        ramp = np.linspace(30, 220, 96)[None, :, None] * np.ones((96, 1, 3))
        arr = np.clip(ramp + rng.normal(0, 4 + 20 * i, (96, 96, 3)), 0, 255).astype(np.uint8)
        paths.append(folder / f"n{i}.png")
        Image.fromarray(arr).save(paths[-1])
    return paths


def records(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


# -- dogiqa metrics -----------------------------------------------------------------------------------------
@pytest.fixture
def labelled(tmp_path: Path) -> tuple[Path, Path, dict[str, float], dict[str, float], dict[str, float]]:
    mos = {"a.jpg": 1.0, "b.jpg": 2.0, "c.jpg": 3.0, "d.jpg": 4.0, "e.jpg": 5.0, "f.jpg": 6.0}
    final = {"a.jpg": 1.5, "b.jpg": 1.0, "c.jpg": 3.5, "d.jpg": 3.0, "e.jpg": 6.0}  # f.jpg has no prediction
    glob = {"a.jpg": 5.0, "b.jpg": 4.0, "c.jpg": 3.2, "d.jpg": 2.1, "e.jpg": 1.0}
    labels = tmp_path / "labels.csv"
    labels.write_text("name,mos\n" + "".join(f"{k},{v}\n" for k, v in mos.items()))
    preds = tmp_path / "preds.jsonl"
    preds.write_text("".join(json.dumps({"path": f"/data/{k}", "score": final[k], "global_score": glob[k],
                                         "error": None}) + "\n" for k in final))  # fmt: skip
    return labels, preds, mos, final, glob


def metrics_json(*args: str) -> dict:
    res = invoke("metrics", *args, "--json")
    assert res.exit_code == 0, res.output
    return json.loads(res.stdout)


def test_metrics_numbers_fields_and_direction(labelled):
    labels, preds, mos, final, glob = labelled
    common = [str(preds), "-d", "generic", "-l", str(labels), "--bootstrap", "0", "--decimals", "-1"]
    names = sorted(final)
    report = metrics_json(*common)
    want = stats.spearmanr([final[n] for n in names], [mos[n] for n in names]).statistic
    assert report["srcc"] == pytest.approx(want, abs=1e-12)
    assert report["plcc"] == pytest.approx(stats.pearsonr([final[n] for n in names], [mos[n] for n in names])[0])
    assert report["krcc"] == pytest.approx(stats.kendalltau([final[n] for n in names], [mos[n] for n in names])[0])
    assert report["n"] == 5 and report["missing"] == 1 and report["missing_policy"] == "drop"
    assert report["predictions"] == str(preds) and report["dataset"] == "generic"
    on_global = metrics_json(*common, "--field", "global_score")
    assert on_global["srcc"] == pytest.approx(stats.spearmanr([glob[n] for n in names], [mos[n] for n in names])[0])
    assert on_global["srcc"] < 0
    flipped = metrics_json(*common, "--field", "global_score", "--lower-is-better")
    assert flipped["srcc"] == pytest.approx(-on_global["srcc"]) and flipped["negated"] is True
    paper = metrics_json(*common, "--missing", "paper")  # f.jpg scored 1
    full = [*names, "f.jpg"]
    with_one = {**final, "f.jpg": 1.0}
    assert paper["n"] == 6 and paper["missing_policy"] == "paper"
    assert paper["srcc"] == pytest.approx(stats.spearmanr([with_one[n] for n in full], [mos[n] for n in full])[0])


def test_metrics_bootstrap_seed_and_rounding(labelled):
    labels, preds, *_ = labelled
    common = [str(preds), "-d", "generic", "-l", str(labels)]
    seeded = metrics_json(*common, "--bootstrap", "200", "--seed", "1")
    assert seeded["ci"]["srcc"] == metrics_json(*common, "--bootstrap", "200", "--seed", "1")["ci"]["srcc"]
    assert seeded["ci"]["srcc"] != metrics_json(*common, "--bootstrap", "200", "--seed", "2")["ci"]["srcc"]
    assert seeded["ci"]["srcc"][0] <= seeded["srcc"] <= seeded["ci"]["srcc"][1]
    none = metrics_json(*common, "--bootstrap", "0")
    assert none["ci"]["srcc"] == [None, None]  # --bootstrap 0: no intervals
    full = metrics_json(*common, "--bootstrap", "0", "--decimals", "-1")
    assert seeded["srcc"] == round(full["srcc"], 4)  # default: 4 decimals
    two = metrics_json(*common, "--bootstrap", "0", "--decimals", "2")
    assert two["plcc"] == round(full["plcc"], 2)


def test_metrics_bootstrap_defaults(tmp_path: Path):
    """README: 95 % CIs from --bootstrap 1000 resamples with --seed 0 unless given."""
    rng = np.random.default_rng(0)
    mos = rng.uniform(1, 5, 40)
    (tmp_path / "l.csv").write_text("name,mos\n" + "".join(f"i{i}.jpg,{m}\n" for i, m in enumerate(mos)))
    preds = tmp_path / "p.json"
    preds.write_text(json.dumps([{"name": f"i{i}.jpg", "score": float(m + rng.normal(0, 1))} for i, m in
                                 enumerate(mos)]))  # fmt: skip
    common = [str(preds), "-d", "generic", "-l", str(tmp_path / "l.csv"), "--decimals", "-1"]
    default = metrics_json(*common)["ci"]
    assert default == metrics_json(*common, "--bootstrap", "1000", "--seed", "0")["ci"]
    assert default != metrics_json(*common, "--bootstrap", "999", "--seed", "0")["ci"]
    assert default != metrics_json(*common, "--bootstrap", "1000", "--seed", "1")["ci"]


def test_metrics_table_and_exit_codes(labelled, tmp_path: Path):
    labels, preds, *_ = labelled
    res = invoke("metrics", str(preds), "-d", "generic", "-l", str(labels), "--bootstrap", "0")
    assert res.exit_code == 0 and "n = 5 of 6" in res.output and "f.jpg" in res.output
    assert not res.output.lstrip().startswith("{")  # a table, not JSON
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"path": "zzz.jpg", "score": 3.0, "error": None}) + "\n")
    nothing = invoke("metrics", str(other), "-d", "generic", "-l", str(labels), "--bootstrap", "0")
    assert nothing.exit_code == 1 and "error: no prediction was evaluated" in nothing.output
    bad = tmp_path / "bad.txt"
    bad.write_text("x")
    unreadable = invoke("metrics", str(bad), "-d", "generic", "-l", str(labels))
    assert unreadable.exit_code == 2 and unreadable.output.startswith("error: ") and "bad.txt" in unreadable.output
    wrong = invoke("metrics", str(preds), "-d", "generic", "-l", str(labels), "--missing", "all")
    assert wrong.exit_code == 2 and "--missing" in wrong.output
    assert invoke("metrics", str(preds), "-d", "nope", "-l", str(labels)).exit_code == 2


# -- dogiqa presets ------------------------------------------------------------------------------------------
def test_presets_rows_as_documented():
    """README "Presets" table: model, readout, segmenter and aggregation of each preset, then the descriptions."""
    res = invoke("presets", env={"COLUMNS": "160"})
    assert res.exit_code == 0
    rows = {line.split()[0]: line.split() for line in res.output.splitlines() if line.strip()}
    qwen = "Qwen/Qwen2.5-VL-7B-Instruct"
    assert rows["paper"][1:] == [PAPER_MODEL, "int", "sam2", "paper"]
    assert rows["paper-code"][1:] == [PAPER_MODEL, "int", "sam2", "code"]
    assert rows["recommended"][1:] == [qwen, "expected", "auto", "paper"]
    assert rows["global"][1:] == [qwen, "expected", "none", "global"]
    assert rows["qalign"][1:] == [qwen, "qalign", "none", "global"]
    header = next(line for line in res.output.splitlines() if line.strip()).split()
    assert header == ["preset", "model", "readout", "segmenter", "aggregation"]
    described = [line.split(":")[0] for line in res.output.splitlines() if re.match(r"^[a-z-]+: ", line)]
    assert described == ["paper", "paper-code", "recommended", "global", "qalign"]
    assert "paper: Dog-IQA as published" in res.output


# -- dogiqa config: every pipeline option reaches the configuration ---------------------------------------
def _value_for(keyword: str, tmp: Path) -> tuple[list[str], object]:
    """Extra options that make ``keyword`` applicable, and a non-default value for it."""
    special: dict[str, tuple[list[str], object]] = {
        "model": ([], str(tmp)), "backend": ([], "transformers"), "scorer": ([], "niqe"), "revision": ([], "r2"),
        "trust_remote_code": ([], True), "clip_model": (["--scorer", "clipiqa"], "org/clip"),
        "owl3_mask": (["--preset", "paper"], "fixed"), "standard": ([], "number"), "levels": ([], 5),
        "readout": ([], "int"), "aggregation": ([], "code"), "c_max": ([], 40.0), "invalid_as_one": ([], True),
        "min_area": ([], 77), "crop_mode": ([], "mask"), "segmenter": ([], "slic"),
        "sam2_model": ([], "org/sam2"), "sam2_preset": ([], "sam2-default"), "small_regions": ([], "fill"),
        "device": ([], "cuda:1"), "dtype": ([], "bfloat16"), "prefix_cache": ([], True), "staged": ([], False),
        "base_url": (["--backend", "openai"], "http://h:1/v1"), "api_key_env": ([], "MY_KEY"),
        "timeout": ([], 7.5), "deadline": ([], 9.5), "max_retry_after": ([], 3.5), "max_retry_time": ([], 11.5),
        "max_response_bytes": ([], 4096),
    }  # fmt: skip
    extra, value = special.get(keyword, ([], 3))
    group = KEYWORDS[keyword].split(".")[0]
    if group == "server" and keyword != "base_url":
        extra = ["--backend", "openai", "--base-url", "http://h:1/v1"]
    return extra, value


def _flag_args(keyword: str, value: object) -> list[str]:
    decls = PIPELINE[keyword][0].param_decls  # the option as the CLI declares it
    if isinstance(value, bool):
        on, _, off = decls[0].partition("/")
        return [on if value else off]
    assert decls[0] == flag_of(KEYWORDS[keyword])
    return [decls[0], str(value)]


@pytest.mark.parametrize("keyword", list(PIPELINE))
def test_every_option_reaches_the_printed_configuration(keyword: str, tmp_path: Path):
    extra, value = _value_for(keyword, tmp_path)
    res = invoke("config", *extra, *_flag_args(keyword, value))
    assert res.exit_code == 0, res.output
    group, name = KEYWORDS[keyword].split(".")
    printed = yaml.safe_load(res.stdout)
    assert printed[group][name] == value
    if keyword != "base_url":  # (openai needs one)
        default = yaml.safe_load(invoke("config", *extra).stdout)
        assert default[group][name] != value  # the option changed it


def test_score_runs_the_configuration_the_options_give(noisy, tmp_path: Path):
    """The record's pipeline equals `dogiqa config` with the same options: no option lost on the way."""
    opts = [*FAST, "--preset", "global", "--min-area", "5", "--crop-mode", "mask", "--device", "cpu",
            "--batch-size", "3", "--chunk-size", "2", "--max-pixels", "5000000", "--max-file-size", "9000000",
            "--serial", "--load-workers", "1", "--max-in-flight", "3", "--c-max", "20", "--revision", "r9",
            "--dtype", "float32", "--levels", "5", "--readout", "int", "--paper-compat"]  # fmt: skip
    out = tmp_path / "r.jsonl"
    res = invoke("score", str(noisy[0]), "-o", str(out), "-q", *opts)
    assert res.exit_code == 0, res.output
    [rec] = records(out)
    printed = yaml.safe_load(invoke("config", *opts).stdout)
    assert rec["config"]["pipeline"] == printed
    assert rec["config"]["pipeline"]["preset"] == "global"
    assert rec["config"]["scorer"] == "niqe" and rec["config"]["min_area"] == 5 and rec["config"]["crop_mode"] == "mask"


def test_config_file_then_options_in_score(noisy, tmp_path: Path):
    run = tmp_path / "run.yaml"
    run.write_text("preset: global\nmodel: {scorer: niqe}\nregions: {min_area: 50}\nruntime: {max_pixels: null}\n")
    out = tmp_path / "r.jsonl"
    res = invoke("score", str(noisy[0]), "-o", str(out), "-q", "--config", str(run), "--min-area", "60")
    assert res.exit_code == 0, res.output
    pipeline = records(out)[0]["config"]["pipeline"]
    assert pipeline["preset"] == "global" and pipeline["model"]["scorer"] == "niqe"
    assert pipeline["regions"]["min_area"] == 60 and pipeline["runtime"]["max_pixels"] is None


def test_show_has_no_throughput_or_server_options(noisy):
    for flag in ("--chunk-size", "--concurrency", "--base-url", "--load-workers", "--max-in-flight"):
        res = invoke("show", str(noisy[0]), flag, "2")
        assert res.exit_code == 2 and "No such option" in res.output and flag in res.output
    help_text = invoke("show", "--help", env={"COLUMNS": "100"}).output
    assert "--crop-mode" in help_text and "--chunk-size" not in help_text


# -- dogiqa score: table, summary line, messages, exit codes -----------------------------------------------
def test_score_table_summary_and_failures(noisy, tmp_path: Path):
    folder = tmp_path / "in"
    folder.mkdir()
    for p in noisy[:2]:
        (folder / p.name).write_bytes(p.read_bytes())
    (folder / "zero.png").write_bytes(b"")
    (folder / "readme.txt").write_text("not an image")
    out = tmp_path / "o.jsonl"
    res = invoke("score", str(folder), "-o", str(out), *FAST)
    assert res.exit_code == 1  # one image failed
    recs = {Path(r["path"]).name: r for r in records(out)}
    assert set(recs) == {"n0.png", "n1.png", "zero.png"}
    lines = res.output.splitlines()
    header = next(x for x in lines if "┃ image" in x).replace("┃", " ").split()
    assert header == ["image", "score", "global", "regions", "invalid", "error"]  # the columns the rows fill
    row = next(x for x in lines if "n0.png" in x).replace("│", " ").split()
    assert row == ["n0.png", f"{recs['n0.png']['score']:.3f}", f"{recs['n0.png']['global_score']:.3f}", "0", "0"]
    bad = next(x for x in lines if "zero.png" in x).replace("│", " ").split()
    assert bad[1:5] == ["-", "-", "0", "0"] and "0 bytes" in recs["zero.png"]["error"]
    assert recs["zero.png"]["error"][:20] in next(x for x in lines if "zero.png" in x)
    t = text(res)
    assert re.search(r"^scoring .* 3/3 ", res.output, re.M)  # the progress bar moved for every image
    assert "2 scored, 1 failed" in t and f"-> {out}" in t
    assert re.search(r"failed .*zero\.png", t)
    assert "readme.txt" not in t  # skipped files are listed only with --verbose
    verbose = invoke("score", str(folder), "-o", str(tmp_path / "v.jsonl"), *FAST, "-q", "--verbose")
    assert "skipped: not an image extension:" in text(verbose) and "readme.txt" in verbose.output
    assert "┃ image" not in verbose.output  # --quiet: no table
    ok = invoke("score", str(noisy[0]), *FAST)  # no --output: summary without an arrow
    assert ok.exit_code == 0 and "1 scored, 0 failed" in text(ok) and "->" not in ok.output


def test_score_table_is_cut_after_50_rows(noisy, tmp_path: Path):
    folder = tmp_path / "many"
    folder.mkdir()
    for i in range(51):
        (folder / f"m{i:02d}.png").write_bytes(noisy[i % 4].read_bytes())
    out = tmp_path / "o.jsonl"
    res = invoke("score", str(folder), "-o", str(out), *FAST)
    assert res.exit_code == 0, res.output
    assert len(records(out)) == 51
    shown = [x for x in res.output.splitlines() if re.search(r"m\d\d\.png", x)]
    assert len(shown) == 50 and "m50.png" not in res.output
    assert f"(the first 50 of 51 images; all in {out})" in text(res)
    no_out = invoke("score", str(folder), *FAST)
    assert "(the first 50 of 51 images)" in text(no_out)
    (folder / "m50.png").unlink()
    fifty = invoke("score", str(folder), *FAST)
    assert "m49.png" in fifty.output and "the first" not in fifty.output  # all shown: nothing to say


def test_output_rules(noisy, tmp_path: Path):
    out = tmp_path / "o.jsonl"
    for args, message in ((["--resume"], "--resume: only with --output FILE"),
                          (["--overwrite"], "--overwrite: only with --output FILE")):  # fmt: skip
        res = invoke("score", str(noisy[0]), *FAST, *args)
        assert res.exit_code == 2 and message in res.output
    both = invoke("score", str(noisy[0]), *FAST, "-o", str(out), "--resume", "--overwrite")
    assert both.exit_code == 2 and "--resume and --overwrite contradict each other" in both.output
    out.write_text("")  # an empty file is not a previous run: written without a flag
    assert invoke("score", str(noisy[0]), *FAST, "-o", str(out)).exit_code == 0 and len(records(out)) == 1
    kept = out.read_text()
    again = invoke("score", str(noisy[1]), *FAST, "-o", str(out))
    assert again.exit_code == 2 and out.read_text() == kept and "--overwrite" in again.output
    assert invoke("score", str(noisy[1]), *FAST, "-o", str(out), "--overwrite").exit_code == 0
    assert [Path(r["path"]).name for r in records(out)] == ["n1.png"]
    resumed = invoke("score", str(noisy[1]), str(noisy[2]), *FAST, "-o", str(out), "--resume")
    assert resumed.exit_code == 0 and [Path(r["path"]).name for r in records(out)] == ["n1.png", "n2.png"]
    for suffix in (".csv", ".parquet", ".JSONL"):
        assert invoke("score", str(noisy[0]), *FAST, "-o", str(tmp_path / f"x{suffix}")).exit_code == 0, suffix
    (tmp_path / "rep").write_text("a file")
    rep = invoke("score", str(noisy[0]), *FAST, "--report", str(tmp_path / "rep"))
    assert rep.exit_code == 2 and "--report:" in rep.output and "is a file; give a folder" in rep.output


def test_ray_only_options_and_ray_checks(noisy, tmp_path: Path):
    for flag, value in (("--address", "auto"), ("--num-workers", "2"), ("--gpus-per-worker", "1"),
                        ("--jsonl", None), ("--retry-failed", None)):  # fmt: skip
        res = invoke("score", str(noisy[0]), *FAST, flag, *([value] if value else []))
        assert res.exit_code == 2 and f"{flag}: only with --engine ray" in res.output, flag
    ray = ["score", str(noisy[0]), *FAST, "--engine", "ray"]
    for out in ([], ["-o", str(tmp_path / "x.parquet")]):
        res = invoke(*ray, *out)
        assert res.exit_code == 2 and "--output" in res.output and "give --output DIR" in res.output
    d = ["-o", str(tmp_path / "d")]
    assert "--num-workers: must be >= 1, not 0" in invoke(*ray, *d, "--num-workers", "0").output
    assert "--gpus-per-worker: must be >= 0, not -0.5" in invoke(*ray, *d, "--gpus-per-worker", "-0.5").output
    assert "--report: only with --engine local" in invoke(*ray, *d, "--report", str(tmp_path / "r")).output


def test_score_report_folder(noisy, tmp_path: Path):
    rep = tmp_path / "rep"
    res = invoke("score", str(noisy[0]), str(noisy[1]), *FAST, "--report", str(rep), "-q", "--preset", "qalign")
    assert res.exit_code == 0, res.output
    assert f"report -> {rep}" in text(res)
    assert len(list(rep.glob("*.png"))) == 2
    page = (rep / "index.html").read_text()
    assert "<dt>preset</dt><dd>qalign</dd>" in page  # the page's header names the preset the run started from


# -- dogiqa show -------------------------------------------------------------------------------------------------
def test_show_default_output_and_failure(noisy, tmp_path: Path):
    img = tmp_path / "pic.png"
    img.write_bytes(noisy[1].read_bytes())
    res = invoke("show", str(img), "--scorer", "niqe", "--segmenter", "none", "--aggregation", "global")
    assert res.exit_code == 0, res.output
    assert (tmp_path / "pic_dogiqa.png").is_file()
    assert re.search(r"final \d+\.\d{3}\s+global \d+\.\d{3}\s+local -\s+->", res.output)
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    bad = invoke("show", str(empty), "--scorer", "niqe", "--segmenter", "none", "--aggregation", "global")
    assert bad.exit_code == 1 and "failed" in bad.output and not (tmp_path / "empty_dogiqa.png").exists()


# -- dogiqa select -------------------------------------------------------------------------------------------------
def test_select_keeps_the_range_and_says_so(tmp_path: Path):
    recs = tmp_path / "r.jsonl"
    rows = [("a", 1.0), ("b", 2.5), ("c", None), ("d", 4.0)]
    recs.write_text("".join(json.dumps({"path": f"{k}.png", "key": k, "score": s,
                                        "error": None if s is not None else "x"}) + "\n" for k, s in rows))  # fmt: skip
    out = tmp_path / "kept.txt"
    res = invoke("select", str(recs), "--min-score", "2", "--max-score", "4", "-o", str(out))
    assert res.exit_code == 0, res.output
    assert out.read_text().split() == ["b", "d"]
    assert f"2 of 4 inputs kept (1 without a score) -> {out}" in text(res)


# -- dogiqa serve: the settings the server gets --------------------------------------------------------------
@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> dict:
    """Replaces the HTTP server by a recorder of what `serve` would start it with."""
    import dogiqa.serve.server

    seen: dict = {}

    def run_server(factory, settings, log_level="info"):
        seen.update(factory=factory, settings=settings, log_level=log_level)

    monkeypatch.setattr(dogiqa.serve.server, "run_server", run_server)
    return seen


def test_serve_passes_its_settings(served: dict, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("MY_TOKEN", "t0ken-value-0123456789")
    res = invoke("serve", *FAST, "--port", "0", "--max-body-mb", "1.5", "--max-upload-pixels", "1234",
                 "--max-files", "3", "--max-queue", "5", "--max-wait-ms", "2.5", "--shutdown-timeout", "4",
                 "--token-env", "MY_TOKEN", "--log-level", "warning", "--chunk-size", "6")  # fmt: skip
    assert res.exit_code == 0, res.output
    s = served["settings"]
    assert (s.host, s.port, s.max_body_bytes, s.max_pixels, s.max_files) == ("127.0.0.1", 0, 1572864, 1234, 3)
    assert (s.max_queue, s.max_wait_ms, s.shutdown_timeout_s, s.max_batch) == (5, 2.5, 4.0, 6)
    assert s.token == "t0ken-value-0123456789" and served["log_level"] == "warning"
    iqa = served["factory"]()  # the pipeline the server would load: the command's configuration
    assert iqa.config["scorer"] == "niqe" and iqa.pipeline_config.runtime.chunk_size == 6
    served.clear()
    assert invoke("serve", *FAST, "--max-batch", "2").exit_code == 0 and served["settings"].max_batch == 2
    assert invoke("serve", *FAST).exit_code == 0
    assert served["settings"].max_batch == 8 and served["settings"].port == 8080  # default: the chunk size (8)
    assert served["settings"].max_body_bytes == 20 * 1024 * 1024 and served["settings"].token is None


def test_serve_refusals(served: dict):
    bad = invoke("serve", *FAST, "--log-level", "loud")
    assert bad.exit_code == 2 and "--log-level" in bad.output and served == {}
    exposed = invoke("serve", *FAST, "--host", "0.0.0.0")
    assert exposed.exit_code == 2 and served == {}  # beyond loopback without a token
    assert invoke("serve", *FAST, "--host", "0.0.0.0", "--insecure").exit_code == 0 and served


# -- runtime options reach the model ---------------------------------------------------------------------------
def test_device_and_dtype_reach_the_model(brightness_qwen2vl_dir: Path, noisy, tmp_path: Path):
    """A CUDA device on this CPU-only machine cannot load (exit 2, named); bfloat16 weights change the level
    probabilities, float32 is what the default (auto) gives on a CPU."""
    base = ["score", str(noisy[0]), "-m", str(brightness_qwen2vl_dir), "--preset", "global", "-q"]
    cuda = invoke(*base, "--device", "cuda")
    assert cuda.exit_code == 2 and cuda.output.startswith("error: cannot build the pipeline") and "cuda" in cuda.output
    probs = {}
    for dtype in ("auto", "float32", "bfloat16"):
        out = tmp_path / f"{dtype}.jsonl"
        res = invoke(*base, "--device", "cpu", "--dtype", dtype, "-o", str(out))
        assert res.exit_code == 0, res.output
        [rec] = records(out)
        assert str(brightness_qwen2vl_dir) in rec["config"]["model"] and rec["config"]["scorer"] == "mllm"
        assert rec["config"]["pipeline"]["runtime"]["dtype"] == dtype
        probs[dtype] = rec["global_probs"]
    assert probs["auto"] == probs["float32"] and probs["bfloat16"] != probs["float32"]
    assert max(abs(a - b) for a, b in zip(probs["bfloat16"], probs["float32"], strict=True)) > 1e-3


# -- score --engine ray: what the runner gets, what the user reads ---------------------------------------------
@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> dict:
    """``run_ray`` replaced by a recorder returning the summary the test puts in ``seen["summary"]``."""
    from dogiqa.runners import ray as ray_runner

    seen: dict = {}

    def run_ray(paths, output, cfg, on_result=None, **options):
        seen.update(paths=paths, output=output, cfg=cfg, options=options)
        if "error" in seen:
            raise ray_runner.RayRunnerError(seen["error"])
        for _ in range(seen["summary"].scored):
            on_result(None)  # one per record, as the runner does
        return seen["summary"]

    monkeypatch.setattr(ray_runner, "run_ray", run_ray)
    return seen


def test_ray_engine_passes_options_and_reports(fake_ray: dict, noisy, tmp_path: Path):
    from dogiqa.runners.ray import RaySummary

    out = tmp_path / "parts"
    fake_ray["summary"] = RaySummary(scored=2, failed=1, invalid_answers=4, seconds=1.25, skipped=3,
                                     failures=[("a.png", "a.png: loading failed: boom")])  # fmt: skip
    args = ["score", str(noisy[0]), str(noisy[1]), *FAST, "--min-area", "7", "--engine", "ray", "-o", str(out),
            "--address", "auto", "--num-workers", "3", "--gpus-per-worker", "0.5", "--jsonl", "--retry-failed",
            "--keep-columns", "a, b", "-q"]  # fmt: skip
    res = invoke(*args)
    assert res.exit_code == 1  # one input failed
    assert fake_ray["paths"] == [str(noisy[0]), str(noisy[1])] and fake_ray["output"] == out
    assert fake_ray["cfg"] == resolve_config(None, None, {"scorer": "niqe", "segmenter": "none",
                                                          "aggregation": "global", "min_area": 7})  # fmt: skip
    opts = fake_ray["options"]
    assert {k: opts[k] for k in ("address", "num_workers", "gpus_per_worker", "jsonl", "retry_failed")} == {
        "address": "auto",
        "num_workers": 3,
        "gpus_per_worker": 0.5,
        "jsonl": True,
        "retry_failed": True,
    }
    assert opts["source_options"].keep_columns == ("a", "b")
    t = text(res)
    assert f"2 scored, 1 failed, 3 already done, 4 invalid answers, 1.2 s -> {out}" in t
    moved = invoke(*[a for a in args if a != "-q"])  # the progress bar counts the records
    assert re.search(r"^scoring \(ray\) .*\b2\b", moved.output, re.M), moved.output
    assert "failed a.png: loading failed: boom" in t
    fake_ray["summary"] = RaySummary(scored=2)
    res = invoke("score", str(noisy[0]), *FAST, "--engine", "ray", "-o", str(out), "-q")
    assert res.exit_code == 0 and set(fake_ray["options"]) == {"source_options"}  # only what was given
    fake_ray["error"] = "cannot reach the cluster at ray://h:10001"
    res = invoke("score", str(noisy[0]), *FAST, "--engine", "ray", "-o", str(out), "-q")
    assert res.exit_code == 2 and "error: cannot reach the cluster at ray://h:10001" in res.output


# -- help: the documented layout -----------------------------------------------------------------------------
def test_method_panel_as_in_the_readme():
    here = Path(__file__).resolve().parents[2]  # the checkout (mutmut's copy: one level further down)
    readme = next(d / "README.md" for d in (here, here.parent) if (d / "README.md").is_file()).read_text()
    block = readme.split("╭─ Method ", 1)[1].split("╰", 1)[0]
    documented = [" ".join(line.strip("│ ").split()) for line in block.splitlines()[1:] if line.strip()]
    res = invoke("score", "--help", env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    panel = res.output.split("╭─ Method ", 1)[1].split("╰", 1)[0]
    shown = [" ".join(line.strip("│ ").split()) for line in panel.splitlines()[1:] if line.strip()]
    assert shown == documented


def _kinds(command: str) -> dict[str, str]:
    """``{flag: the word after it}`` in ``command --help`` (a kind such as N, or the help's first word)."""
    res = invoke(command, "--help", env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"})
    out = {}
    for line in res.output.splitlines():
        words = [w for w in line.strip("│ ").split() if w != "*"]
        if words and words[0].startswith("--"):
            rest = [w for w in words[1:] if not re.fullmatch(r"-\w|--no-[\w-]+", w)]
            out[words[0]] = rest[0] if rest else ""
    return out


def test_own_options_show_a_kind_not_a_type():
    kinds = _kinds("eval")
    assert (kinds["--bootstrap"], kinds["--dataset"], kinds["--root"], kinds["--limit"]) == ("N", "NAME", "DIR", "N")
    assert kinds["--no-plot"] == "No" and kinds["--json"] == "Metrics"  # flags: no kind, straight to the help
    kinds = _kinds("metrics")
    assert (kinds["--seed"], kinds["--labels"], kinds["--field"], kinds["--decimals"]) == ("N", "PATH", "TEXT", "N")
    assert kinds["--lower-is-better"] == "Predictions"
    kinds = _kinds("serve")
    assert (kinds["--port"], kinds["--max-wait-ms"], kinds["--host"], kinds["--insecure"]) == (
        "N",
        "MS",
        "ADDR",
        "Listen",
    )
    assert "PREDICTIONS" in invoke("metrics", "--help").output.split("Usage:")[1].splitlines()[0]
    serve_help = invoke("serve", "--help", env={"COLUMNS": "100", "TERMINAL_WIDTH": "100"}).output
    service = serve_help.split("╭─ Service", 1)[1].split("╰", 1)[0]  # the command's own panel
    assert all(flag in service for flag in ("--host", "--port", "--token-env", "--max-batch", "--log-level"))


def test_show_lists_the_regions_score_records(noisy, tmp_path: Path):
    """`show` draws and lists the same regions and scores `score` records for the image."""
    img = tmp_path / "obj.png"
    arr = np.asarray(Image.open(noisy[0])).copy()
    arr[20:70, 15:60] = (200, 40, 40)
    Image.fromarray(arr).save(img)
    opts = ["--scorer", "piqe", "--segmenter", "felzenszwalb", "--min-area", "300", "--aggregation", "paper"]
    out = tmp_path / "r.jsonl"
    assert invoke("score", str(img), *opts, "-o", str(out), "-q").exit_code == 0
    [rec] = records(out)
    assert len(rec["regions"]) >= 2
    res = invoke("show", str(img), *opts, "--out", str(tmp_path / "map.png"), env={"COLUMNS": "150"})
    assert res.exit_code == 0, res.output
    rows = [line.replace("│", " ").split() for line in res.output.splitlines() if re.match(r"^│ \d+ ", line)]
    assert len(rows) == len(rec["regions"])
    for row, region in zip(rows, rec["regions"], strict=True):
        assert row[1] == region["kind"] and row[-3] == f"{region['weight']:.0f}" and row[-2] == f"{region['score']:.3f}"
        assert " ".join(row[2:-3]) == str(tuple(region["box"]))
    want = f"final {rec['score']:.3f}  global {rec['global_score']:.3f}  local {rec['local_score']:.3f}"
    assert want in res.output and Image.open(tmp_path / "map.png").size[1] == 96


def test_top_level_usage_errors():
    bare = invoke()
    assert bare.exit_code == 2 and all(c in bare.output for c in ("score", "eval", "metrics", "presets", "serve"))
    assert "Exit codes: 0 all scored; 1 some inputs failed (error records); 2 usage error; 3 internal error" in (
        " ".join(bare.output.split())
    )
    for args, message in ((["nope"], "error: No such command 'nope'."), (["score"], "error: Missing argument 'PATH'."),
                          (["score", "x.png", "--bogus"], "error: No such option: --bogus")):  # fmt: skip
        res = invoke(*args)
        assert res.exit_code == 2 and res.output.startswith(message), res.output
        assert len(res.output.strip().splitlines()) == 1 and "--help)" in res.output
