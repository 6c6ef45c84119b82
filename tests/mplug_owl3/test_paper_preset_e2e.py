"""The paper preset end to end on the authors' mPLUG-Owl3 reference fixture (small.png, global + one region).

What the authors' eval.py did is in the fixture: the exact user content of the global call (20-space indent)
and of a local call (24 spaces), the generated token, the resulting ``eval_py_score`` (an unparsable answer
scores 1) and the next-token logits. The pipeline must reproduce each, and its final score must be the
paper's / the authors' code's aggregation of those fixture values.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from dogiqa.api import DogIQA


class WholeImageMask:
    """One mask covering the image: a single region whose crop is the whole image (the fixture's local case)."""

    name = "whole-mask"

    def segment(self, image: Image.Image) -> list[np.ndarray]:
        return [np.ones((image.height, image.width), bool)]


class Recording:
    def __init__(self, inner):
        self.inner, self.model_id, self.calls = inner, inner.model_id, []

    def check_candidates(self, candidates):
        return self.inner.check_candidates(candidates)

    def run(self, images, prompt, candidates, want_text=True):
        outs = self.inner.run(images, prompt, candidates, want_text=want_text)
        self.calls.append((prompt, [np.asarray(im).copy() for im in images], outs))
        return outs


def case(cases: dict, name: str) -> dict:
    return next(c for c in cases["cases"] if c["case"] == name)


@pytest.fixture(scope="module")
def paper_run(fixture_dir):
    results = {}
    for preset in ("paper", "paper-code"):
        iqa = DogIQA.from_preset(preset, model=str(fixture_dir / "model"), device="cpu", dtype="float32",
                                 segmenter=WholeImageMask())  # fmt: skip
        iqa.scorer.backend = rec = Recording(iqa.scorer.backend)
        results[preset] = (iqa.score(fixture_dir / "images" / "small.png"), rec.calls)
    return results


def test_one_call_per_prompt_with_the_authors_exact_content(paper_run, cases, fixture_dir):
    record, calls = paper_run["paper"]
    assert record.error is None and len(calls) == 2
    small = np.asarray(Image.open(fixture_dir / "images" / "small.png").convert("RGB"))
    for name in ("small_global", "small_local"):
        c = case(cases, name)
        content = c["messages"][0]["content"]
        matching = [(p, ims) for p, ims, _ in calls if p.before_image + "<|image|>" + p.after_image == content]
        assert len(matching) == 1, name  # this call's prompt, byte for byte (20 vs 24 spaces)
        [(_, images)] = matching
        assert len(images) == 1 and np.array_equal(images[0], small)


def test_answers_and_logits_match_the_reference_per_call(paper_run, cases, tensors):
    record, calls = paper_run["paper"]
    digits = [str(k) for k in range(1, 8)]
    refs = {}
    for name in ("small_global", "small_local"):
        logits = torch.from_numpy(tensors[f"{name}/logits"])
        refs[name] = torch.log_softmax(logits.double(), dim=-1)[[15 + k for k in range(1, 8)]].numpy()  # '1' is id 16
    assert np.abs(refs["small_global"] - refs["small_local"]).max() > 1e-3  # the two prompts really differ
    for prompt, _, [out] in calls:
        name = "small_global" if prompt.after_image.startswith("\n" + " " * 20 + "P") else "small_local"
        assert out.text == case(cases, name)["generate_output"][0]
        np.testing.assert_allclose([out.logprobs[d] for d in digits], refs[name], atol=1e-4)
    assert record.global_raw == case(cases, "small_global")["generate_output"][0]
    assert [r.raw for r in record.regions] == [case(cases, "small_local")["generate_output"][0]]


def test_invalid_answers_score_one_like_eval_py(paper_run, cases):
    record, _ = paper_run["paper"]
    assert record.global_score == case(cases, "small_global")["eval_py_score"] == 1
    assert [r.score for r in record.regions] == [case(cases, "small_local")["eval_py_score"]]
    assert record.invalid == 2 and record.config["readout"] == "int" and record.config["levels"] == 7


def test_final_scores_are_the_papers_and_the_codes_aggregation_of_the_fixture_values(paper_run, cases):
    s_g = case(cases, "small_global")["eval_py_score"]
    s_local = case(cases, "small_local")["eval_py_score"]  # one region: its own score
    paper, _ = paper_run["paper"]
    assert paper.score == pytest.approx((s_g + s_local) / 2 + 1 * 7 / 71)  # spec §4, K = 7, c_max = 71
    code, _ = paper_run["paper-code"]
    assert code.score == pytest.approx(s_local + 0.1 * 1 + 0.5 * s_g)  # eval.py: S_local + 0.1 N + 0.5 s_g
