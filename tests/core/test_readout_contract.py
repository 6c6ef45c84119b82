"""Each readout's contract for any K (spec §2, README "Readouts"): which answers are levels, what an invalid
answer gives, the expected level's moments, and the Q-Align / Q-Bench prompts and weights.

Expected values are hand computations (small distributions with exact moments)."""

from __future__ import annotations

import math

import pytest

from dogiqa.backends.base import RawOutput
from dogiqa.readout import distribution_stats, get_readout, parse_level, softmax_levels
from dogiqa.standards import get_standard

KS = [3, 5, 7, 9]


def std(k: int):
    return get_standard("word", k)


def lp_dict(tokens: list[str], probs: list[float]) -> dict[str, float]:
    return {t: math.log(p) for t, p in zip(tokens, probs, strict=True) if p > 0}


# -- parse_level / int readout ---------------------------------------------------------------------------
@pytest.mark.parametrize("k", KS)
def test_every_level_of_k_parses_and_nothing_outside(k):
    for level in range(1, k + 1):
        assert parse_level(str(level), k) == level
        assert parse_level(f" {level}\n", k) == level  # surrounding whitespace of a decoded token
    for outside in ("0", str(k + 1), "-1", "10", "42"):
        assert parse_level(outside, k) is None
    for junk in ("", " ", "seven", "3.0", "3 4", "Good", "\ufffd"):
        assert parse_level(junk, k) is None


@pytest.mark.parametrize("k", KS)
def test_int_readout_uses_the_standards_k(k):
    r = get_readout("int")
    s = std(k)
    assert r.levels(s) == k and r.score_range(s) == (1.0, float(k))
    assert r.candidate_variants(s) == [[str(i) for i in range(1, k + 1)]]
    top = r.read(RawOutput(text=str(k)), s, s.level_tokens)
    assert top.score == float(k) and top.error is None and not top.extra.get("invalid") and top.raw == str(k)
    over = r.read(RawOutput(text=str(k + 1)), s, s.level_tokens)
    assert over.score is None and over.extra["invalid"] is True
    assert f"1..{k}" in over.error and repr(str(k + 1)) in over.error  # names the answer and the range
    assert over.raw == str(k + 1)


def test_int_readout_reads_the_text_not_the_logprobs():
    s = std(7)
    # log-probabilities favour 7 but the generated text says 2: the paper parses the text
    raw = RawOutput(text="2", logprobs=lp_dict(s.level_tokens, [0, 0.1, 0, 0, 0, 0, 0.9]))
    assert get_readout("int").read(raw, s, s.level_tokens).score == 2.0
    # a non-digit answer is invalid even when a level has a log-prob: the answer decides
    word = get_readout("int").read(RawOutput(text="Good", logprobs=raw.logprobs), s, s.level_tokens)
    assert word.score is None and word.extra["invalid"] is True and word.raw == "Good"


@pytest.mark.parametrize("answer", ["x", "", None, "0", "8"])
def test_invalid_as_one_is_the_authors_fallback(answer):
    s = std(7)
    out = get_readout("int").read(RawOutput(text=answer), s, s.level_tokens, invalid_as_one=True)
    assert out.score == 1.0 and out.error is None and out.extra["invalid"] is True and out.raw == answer
    plain = get_readout("int").read(RawOutput(text=answer), s, s.level_tokens)
    assert plain.score is None and plain.extra["invalid"] is True and plain.error


def test_invalid_as_one_leaves_valid_answers_and_failed_calls_alone():
    s = std(5)
    ok = get_readout("int").read(RawOutput(text="4"), s, s.level_tokens, invalid_as_one=True)
    assert ok.score == 4.0 and not ok.extra.get("invalid")
    failed = get_readout("int").read(RawOutput(error="boom"), s, s.level_tokens, invalid_as_one=True)
    assert failed.score is None and failed.error == "boom"  # a failed call is not an answer


# -- softmax / moments -----------------------------------------------------------------------------------
def test_softmax_renormalises_and_is_stable_for_very_negative_logprobs():
    assert softmax_levels([math.log(0.2), math.log(0.6)]) == pytest.approx([0.25, 0.75])
    # two tokens far down the vocabulary: exp() underflows unless the maximum is taken out first
    assert softmax_levels([-1000.0, -1000.0 + math.log(3)]) == pytest.approx([0.25, 0.75])
    assert softmax_levels([-800.0]) == pytest.approx([1.0])
    # absent levels (None, -inf, nan) get probability 0; the rest is renormalised
    probs = softmax_levels([None, -math.inf, math.log(0.1), float("nan"), math.log(0.3)])
    assert probs == pytest.approx([0, 0, 0.25, 0, 0.75])
    for nothing in ([None], [-math.inf, None], [float("nan")], []):
        with pytest.raises(ValueError, match="no level token"):
            softmax_levels(nothing)


def test_distribution_stats_by_hand():
    mean, var, ent = distribution_stats([0.5, 0.25, 0.25], [1.0, 2.0, 4.0])
    assert mean == pytest.approx(2.0)  # 0.5 + 0.5 + 1
    assert var == pytest.approx(0.5 * 1 + 0.25 * 0 + 0.25 * 4)  # 1.5
    assert ent == pytest.approx(1.5 * math.log(2))  # 0.5 ln2 + 2 * 0.25 ln4
    assert distribution_stats([0.0, 1.0], [1.0, 5.0]) == pytest.approx((5.0, 0.0, 0.0))  # p = 0: no log(0)
    with pytest.raises(ValueError):
        distribution_stats([0.5, 0.5], [1.0])  # mismatched lengths are a bug, not a silent truncation


# -- expected readout ------------------------------------------------------------------------------------
@pytest.mark.parametrize("k", KS)
def test_expected_readout_for_any_k(k):
    s = std(k)
    r = get_readout("expected")
    assert r.levels(s) == k and r.score_range(s) == (1.0, float(k))
    assert r.candidate_variants(s) == [s.level_tokens]
    # all mass on 1 and K, 3:1: mean 1 + 3/4 (K-1), variance 3/16 (K-1)^2
    probs = [0.0] * k
    probs[0], probs[-1] = 0.75, 0.25
    out = r.read(RawOutput(text="1", logprobs=lp_dict(s.level_tokens, probs)), s, s.level_tokens)
    assert out.score == pytest.approx(1 + 0.25 * (k - 1))
    assert out.variance == pytest.approx(0.75 * 0.25 * (k - 1) ** 2)
    assert out.entropy == pytest.approx(-(0.75 * math.log(0.75) + 0.25 * math.log(0.25)))
    assert out.probs == pytest.approx(probs)  # in level order, absent levels 0
    assert out.raw == "1" and out.error is None


def test_expected_readout_uses_the_candidates_in_level_order():
    s = std(3)
    lps = {"a": math.log(0.5), "b": math.log(0.5), "c": math.log(1e-9)}
    # candidate i is level i + 1, whatever its text
    out = get_readout("expected").read(RawOutput(logprobs=lps), s, ["c", "b", "a"])
    assert out.score == pytest.approx(2.5, abs=1e-6) and out.probs[0] == pytest.approx(0.0, abs=1e-8)


def test_expected_readout_without_any_level_is_invalid_not_a_crash():
    s = std(7)
    out = get_readout("expected").read(RawOutput(text="the", logprobs={"the": -0.1}), s, s.level_tokens)
    assert out.score is None and out.extra["invalid"] is True and "no level token" in out.error
    assert out.raw == "the"
    empty = get_readout("expected").read(RawOutput(text="3", logprobs={}), s, s.level_tokens)
    assert empty.score is None and "no log-probabilities" in empty.error and empty.raw == "3"  # the answer kept


def test_a_failed_call_passes_through_every_readout():
    s = std(7)
    for name in ("int", "expected", "qalign", "qbench"):
        r = get_readout(name)
        out = r.read(RawOutput(text="5", logprobs={"5": -0.1}, error="HTTP 500"), s, r.candidate_variants(s)[0])
        assert out.score is None and out.error == "HTTP 500" and out.raw == "5", name


# -- Q-Align / Q-Bench -----------------------------------------------------------------------------------
def test_qalign_weights_bad_to_excellent_as_1_to_5():
    s = std(9)  # the standard's K does not matter
    r = get_readout("qalign")
    assert r.levels(s) == 5 and r.score_range(s) == (1.0, 5.0)
    spaced, bare = r.candidate_variants(s)
    assert bare == ["bad", "poor", "fair", "good", "excellent"]
    assert spaced == [" " + w for w in bare]
    for words in (spaced, bare):
        # all mass on "excellent" -> 5; on "bad" -> 1; half poor / half good -> 3 with variance 1
        assert r.read(RawOutput(logprobs={words[4]: -0.01}), s, words).score == pytest.approx(5.0)
        assert r.read(RawOutput(logprobs={words[0]: -0.01}), s, words).score == pytest.approx(1.0)
        half = r.read(RawOutput(logprobs=lp_dict(words, [0, 0.5, 0, 0.5, 0])), s, words)
        assert half.score == pytest.approx(3.0) and half.variance == pytest.approx(1.0)
        assert half.entropy == pytest.approx(math.log(2))


def test_qbench_is_the_probability_of_good():
    s = std(7)
    r = get_readout("qbench")
    assert r.levels(s) == 2 and r.score_range(s) == (0.0, 1.0)
    spaced, bare = r.candidate_variants(s)
    assert bare == ["poor", "good"] and spaced == [" poor", " good"]
    out = r.read(RawOutput(logprobs={" poor": math.log(0.06), " good": math.log(0.02)}), s, spaced)
    assert out.score == pytest.approx(0.25)  # renormalised over the two words
    assert out.variance == pytest.approx(0.25 * 0.75)  # Bernoulli
    assert out.probs == pytest.approx([0.75, 0.25])
    only_good = r.read(RawOutput(logprobs={"good": -3.0}), s, bare)
    assert only_good.score == pytest.approx(1.0)


@pytest.mark.parametrize("name", ["qalign", "qbench"])
def test_answer_prefix_reads_as_one_sentence_with_either_candidate_form(name):
    """Spaced candidates (" good") follow the prefix directly; bare ones ("good") need the prefix's space."""
    s = std(7)
    r = get_readout(name)
    spaced, bare = r.candidate_variants(s)
    for words, is_spaced in ((spaced, True), (bare, False)):
        for call in ("global", "local"):
            prompt = r.prompt(s, call, paper_whitespace=False, spaced=is_spaced)
            assert prompt.answer_prefix + words[-1] == "The quality of the image is " + bare[-1]
            assert prompt.system is None


def test_qalign_and_qbench_prompts():
    s = std(7)
    qa = get_readout("qalign").prompt(s, "global", paper_whitespace=True)
    # Q-Align's question comes before the image, nothing after it
    assert qa.before_image.strip() == "How would you rate the quality of this image?" and qa.after_image == ""
    assert qa.before_image.endswith("\n")
    assert get_readout("qalign").prompt(s, "local", paper_whitespace=False) == qa  # one prompt for every call
    qb = get_readout("qbench").prompt(s, "global", paper_whitespace=False)
    assert qb.before_image == "" and qb.after_image.strip() == "Rate the quality of the image."
    assert qb.after_image.startswith("\n")
    assert "standard" not in qa.before_image + qb.after_image  # not Dog-IQA's level list


@pytest.mark.parametrize("name", ["int", "expected"])
@pytest.mark.parametrize("k", [3, 9])
def test_dog_iqa_readouts_use_the_standards_prompt_per_call(name, k):
    s = std(k)
    r = get_readout(name)
    for call in ("global", "local"):
        for paper in (False, True):
            assert r.prompt(s, call, paper_whitespace=paper) == s.prompt(call, paper_whitespace=paper)
    # the authors' indentation differs between the global call and a crop
    assert r.prompt(s, "global", True) != r.prompt(s, "local", True)
    assert f"{k}: " in r.prompt(s, "global", False).before_image  # the level list of this K


def test_readouts_by_name():
    for name in ("int", "expected", "qalign", "qbench"):
        r = get_readout(name)
        assert r.name == name and r.higher_is_better
    with pytest.raises(ValueError) as info:
        get_readout("mean")
    assert "'mean'" in str(info.value)
    for name in ("int", "expected", "qalign", "qbench"):
        assert name in str(info.value)  # the message lists the choices
