"""MLLMScorer's contract, observed through the tiny brightness Qwen2-VL behind a call recorder (brightness_vlm.py):
which prompt each crop is asked with, which tokens are read, invalid answers, the raw-output store."""

from __future__ import annotations

import math

import pytest
from brightness_vlm import BrightnessVLM, DictStore, PreparingBrightnessVLM, approx, grey, t_of, tw_of

from dogiqa.backends.base import BackendError, Prompt
from dogiqa.scorers.base import Crop
from dogiqa.scorers.mllm import MLLMScorer
from dogiqa.testing.sensitive import expected_level, level_probs

QUERY = (
    "Please evaluate the quality of the image and score in quality. Only tell me the number. Do not analysis the image."
)


def indent(prompt: Prompt) -> int:
    """Spaces between the newline after the image and the query."""
    return len(prompt.after_image) - len(prompt.after_image.lstrip("\n").lstrip(" ")) - 1


def crops_of(*specs: tuple[int, str, str]) -> list[Crop]:
    """(grey value, key, call) -> crops."""
    return [Crop(grey(v), key=k, call=c) for v, k, c in specs]


MIXED = [(40, "a", "local"), (200, "b", "global"), (120, "c", "local")]  # t = 1.25, 6.27, 3.76


def test_same_prompt_for_both_calls_is_one_backend_call_in_input_order():
    vlm = BrightnessVLM()
    scores = MLLMScorer(vlm, "word", "int", 7).score_crops(crops_of(*MIXED))
    assert [s.raw for s in scores] == ["1", "6", "4"] and [s.score for s in scores] == [1.0, 6.0, 4.0]
    [(prompt, ys, cands)] = vlm.calls
    assert ys == approx([40 / 255, 200 / 255, 120 / 255]) and cands == [str(k) for k in range(1, 8)]
    assert prompt.before_image.startswith(" You are a helpful assistant") and prompt.before_image.endswith("\n")
    assert "7: Perfect!" in prompt.before_image and "8: " not in prompt.before_image
    assert prompt.after_image == "\n" + QUERY  # no indentation without the paper's whitespace


def test_paper_whitespace_asks_global_and_local_crops_with_their_own_prompts():
    vlm = BrightnessVLM()
    scores = MLLMScorer(vlm, "word", "int", 7, paper_whitespace=True).score_crops(crops_of(*MIXED))
    assert [s.raw for s in scores] == ["1", "6", "4"]  # still in input order
    by_call = {p.after_image: ys for p, ys, _ in vlm.calls}
    assert by_call == {
        "\n" + " " * 20 + QUERY: approx([200 / 255]),  # the global view: the authors' 20 spaces
        "\n" + " " * 24 + QUERY: approx([40 / 255, 120 / 255]),  # region crops: 24 spaces
    }
    for p, _, _ in vlm.calls:
        assert p.before_image.endswith("\n" + " " * indent(p))


@pytest.mark.parametrize("levels", [3, 5, 9])
def test_levels_set_the_candidates_and_the_valid_answers(levels):
    vlm = BrightnessVLM()
    scorer = MLLMScorer(vlm, "word", "int", levels)
    assert scorer.levels == levels and scorer.score_range == (1.0, float(levels))
    s_white, s_mid = scorer.score_crops(crops_of((255, "w", "global"), (80, "m", "global")))  # "8", "3"
    assert vlm.calls[0][2] == [str(k) for k in range(1, levels + 1)]
    assert s_mid.score == (3.0 if levels >= 3 else None)
    assert s_white.score == (8.0 if levels == 9 else None)
    if levels < 8:
        assert s_white.failure == "invalid_answer" and f"1..{levels}" in s_white.error


def test_invalid_answers_are_errors_unless_the_paper_fallback_scores_them_one():
    crops = crops_of((0, "d", "global"), (255, "w", "local"), (160, "m", "local"))  # "0", "8", "5"
    strict = MLLMScorer(BrightnessVLM(), "word", "int", 7).score_crops(crops)
    assert [s.score for s in strict] == [None, None, 5.0]
    assert [s.failure for s in strict] == ["invalid_answer", "invalid_answer", None]
    assert "'0'" in strict[0].error and "'8'" in strict[1].error
    paper = MLLMScorer(BrightnessVLM(), "word", "int", 7, invalid_as_one=True).score_crops(crops)
    assert [s.score for s in paper] == [1.0, 1.0, 5.0] and [s.raw for s in paper] == ["0", "8", "5"]
    assert [s.failure for s in paper] == ["invalid_answer", "invalid_answer", None]  # still counted


def test_expected_readout_reads_the_level_token_distribution():
    [s] = MLLMScorer(BrightnessVLM(), "word", "expected", 5).score_crops(crops_of((100, "x", "global")))
    t = t_of(100)
    probs = level_probs(t, 5)
    mean = expected_level(t, 5)
    assert s.score == approx(mean) and s.probs == approx(probs)
    assert s.variance == approx(sum(p * (k - mean) ** 2 for k, p in enumerate(probs, start=1)))
    assert s.entropy == approx(-sum(p * math.log(p) for p in probs))


def test_qalign_uses_its_own_prompt_words_and_five_levels():
    vlm = BrightnessVLM()
    scorer = MLLMScorer(vlm, "word", "qalign", 7)  # Q-Align has 5 levels whatever the standard's K
    assert scorer.levels == 5 and scorer.score_range == (1.0, 5.0)
    [s] = scorer.score_crops(crops_of((80, "x", "local")))
    [(prompt, _, cands)] = vlm.calls
    assert cands == [" bad", " poor", " fair", " good", " excellent"]  # level order 1..5, with a leading space
    assert prompt == Prompt("How would you rate the quality of this image?\n", "",
                            answer_prefix="The quality of the image is")  # fmt: skip
    assert s.score == approx(expected_level(tw_of(80), 5))


def test_qalign_without_space_tokens_falls_back_and_moves_the_space_into_the_prefix():
    vlm = BrightnessVLM(reject=[" bad"])
    scorer = MLLMScorer(vlm, "word", "qalign")
    assert vlm.checked[0][0] == " bad" and scorer.candidates == ["bad", "poor", "fair", "good", "excellent"]
    scorer.score_crops(crops_of((80, "x", "global")))
    [(prompt, _, cands)] = vlm.calls
    assert cands == ["bad", "poor", "fair", "good", "excellent"]
    assert prompt.answer_prefix == "The quality of the image is "  # the word follows a space


def test_qbench_is_the_probability_of_good():
    vlm = BrightnessVLM()
    scorer = MLLMScorer(vlm, "word", "qbench")
    assert scorer.levels == 2 and scorer.score_range == (0.0, 1.0)
    [s] = scorer.score_crops(crops_of((120, "x", "global")))
    t = tw_of(120)
    poor, good = math.exp(-((2 - t) ** 2)), math.exp(-((4 - t) ** 2))
    assert vlm.calls[0][2] == [" poor", " good"] and s.score == approx(good / (poor + good))
    assert "Rate the quality of the image." in vlm.calls[0][0].after_image


def test_a_readout_the_model_cannot_serve_is_refused_with_each_reason():
    with pytest.raises(BackendError, match="readout 'qalign' cannot run on this model") as info:
        MLLMScorer(BrightnessVLM(reject=[" bad", "good"]), "word", "qalign")
    assert "' bad' is not one token" in str(info.value) and "'good' is not one token" in str(info.value)


def test_a_probing_backend_is_asked_once_with_the_global_prompt_before_any_image():
    class Probing(BrightnessVLM):
        def __init__(self):
            super().__init__()
            self.probes = []

        def probe(self, prompt, candidates, readout):
            self.probes.append((prompt, list(candidates), readout))

    vlm = Probing()
    scorer = MLLMScorer(vlm, "word", "expected", 5, paper_whitespace=True)
    assert vlm.probes == [(scorer.prompt_for("global"), ["1", "2", "3", "4", "5"], "expected")]
    assert vlm.probes[0][0].after_image.startswith("\n" + " " * 20 + "Please") and vlm.calls == []


def test_backend_errors_stay_with_their_crop():
    vlm = BrightnessVLM(error_below=0.1)
    scores = MLLMScorer(vlm, "word", "int", 7).score_crops(crops_of((10, "d", "local"), (200, "b", "local")))
    assert scores[0].score is None and scores[0].failure == "call_failed" and "too dark" in scores[0].error
    assert scores[1].score == 6.0 and scores[1].error is None


def test_the_raw_store_reuses_answers_asks_twins_once_and_keeps_no_errors():
    store, vlm = DictStore(), BrightnessVLM(error_below=0.1)
    scorer = MLLMScorer(vlm, "word", "int", 7, cache=store)
    crops = crops_of((200, "same", "global"), (200, "same", "global"), (120, "", "local"), (10, "dark", "local"))
    first = scorer.score_crops(crops)
    assert vlm.asked == 3  # the twin is asked once; the keyless crop and the dark one are asked
    assert [s.raw for s in first[:3]] == ["6", "6", "4"] and first[3].score is None
    assert len(store.data) == 1  # only the keyed answer without an error is kept
    again = scorer.score_crops(crops)
    assert vlm.asked == 5  # the keyless and the failed crop are asked again, the stored one is not
    assert [s.raw for s in again] == [s.raw for s in first]


@pytest.mark.parametrize("store", [None, "dict"])
def test_crops_without_a_key_are_never_taken_for_each_other(store):
    vlm = BrightnessVLM()
    scorer = MLLMScorer(vlm, "word", "int", 7, cache=DictStore() if store else None)
    scores = scorer.score_crops(crops_of((40, "", "local"), (200, "", "local"), (120, "", "local")))
    assert vlm.asked == 3 and [s.raw for s in scores] == ["1", "6", "4"]


def test_the_store_key_depends_on_model_prompt_and_tokens_not_on_the_call_alone():
    store = DictStore()
    crop = crops_of((120, "k", "global"))
    MLLMScorer(BrightnessVLM(), "word", "int", 7, cache=store).score_crops(crop)
    same = BrightnessVLM()
    MLLMScorer(same, "word", "int", 7, cache=store).score_crops(crops_of((120, "k", "local")))
    assert same.asked == 0  # global and local prompts are the same text without the paper's whitespace
    for other in (
        MLLMScorer(BrightnessVLM(model_id="other/vlm"), "word", "int", 7, cache=store),  # another model
        MLLMScorer(BrightnessVLM(), "word", "int", 5, cache=store),  # other levels: other prompt and tokens
        MLLMScorer(BrightnessVLM(), "word", "int", 7, paper_whitespace=True, cache=store),  # other prompt
        MLLMScorer(BrightnessVLM(), "number", "int", 7, cache=store),  # another standard
    ):
        other.score_crops(crop)
        assert other.backend.asked == 1
    ws = BrightnessVLM()
    MLLMScorer(ws, "word", "int", 7, paper_whitespace=True, cache=store).score_crops(crops_of((120, "k", "local")))
    assert ws.asked == 1  # the local prompt differs from the global one with the paper's whitespace


def _no_plain_run(*args: object, **kwargs: object) -> None:
    raise AssertionError("backend.run called although the crops were prepared")


def test_prepared_scoring_equals_direct_scoring_and_skips_stored_answers():
    store = DictStore()
    direct = MLLMScorer(BrightnessVLM(), "word", "expected", 7, paper_whitespace=True).score_crops(crops_of(*MIXED))
    vlm = PreparingBrightnessVLM()
    scorer = MLLMScorer(vlm, "word", "expected", 7, paper_whitespace=True, cache=store)
    plan = scorer.prepare_crops(crops_of(*MIXED))
    assert vlm.calls == [] and len(vlm.prepared) == 2  # preprocessing only, one per prompt
    assert all(cands == [str(k) for k in range(1, 8)] and want for _, cands, want in vlm.prepared)
    assert sorted(indent(p) for p, _, _ in vlm.prepared) == [20, 24]
    vlm.run = _no_plain_run  # the prepared inputs are what the model runs on
    staged = scorer.score_prepared(plan)
    assert [s.score for s in staged] == approx([s.score for s in direct])
    assert [s.variance for s in staged] == approx([s.variance for s in direct])
    plan = scorer.prepare_crops(crops_of(*MIXED, (250, "new", "local")))
    assert sorted(len(ys) for _, ys, _ in vlm.calls) == [1, 2]
    again = scorer.score_prepared(plan)
    assert len(vlm.calls) == 3 and len(vlm.calls[2][1]) == 1  # only the new crop is asked
    assert [s.score for s in again[:3]] == approx([s.score for s in direct])


def test_a_backend_without_prepare_is_run_on_the_plan():
    vlm = BrightnessVLM()
    scorer = MLLMScorer(vlm, "word", "int", 7)
    plan = scorer.prepare_crops(crops_of(*MIXED))
    assert vlm.calls == []
    assert [s.raw for s in scorer.score_prepared(plan)] == ["1", "6", "4"] and len(vlm.calls) == 1


def test_defaults_are_the_word_standard_and_the_expected_readout():
    vlm = BrightnessVLM()
    [s] = MLLMScorer(vlm).score_crops(crops_of((100, "x", "global")))
    assert vlm.calls[0][2] == [str(k) for k in range(1, 8)] and "7: Perfect!" in vlm.calls[0][0].before_image
    assert s.score == approx(expected_level(t_of(100), 7)) and s.probs == approx(level_probs(t_of(100), 7))


def test_standard_and_readout_objects_are_used_as_given():
    from dogiqa.readout import get_readout
    from dogiqa.standards import get_standard

    vlm = BrightnessVLM()
    scorer = MLLMScorer(vlm, get_standard("number", 5), get_readout("int"), levels=9)  # levels: only for names
    [s] = scorer.score_crops(crops_of((160, "x", "global")))
    assert scorer.levels == 5 and vlm.calls[0][2] == ["1", "2", "3", "4", "5"] and s.raw == "5" and s.score == 5.0
    assert "[1,2,3,4,5]" in vlm.calls[0][0].after_image
