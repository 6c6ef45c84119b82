import math

import pytest

from dogiqa.backends.base import RawOutput
from dogiqa.readout import get_readout, parse_level, softmax_levels
from dogiqa.standards import get_standard

W7 = get_standard("word", 7)
DIGITS = W7.level_tokens


def test_parse_level():
    assert parse_level("5", 7) == 5
    assert parse_level(" 7\n", 7) == 7
    assert parse_level("8", 7) is None
    assert parse_level("\ufffd", 7) is None
    assert parse_level(None, 7) is None


def test_int_readout_invalid_handling():
    r = get_readout("int")
    assert r.read(RawOutput(text="6"), W7, DIGITS).score == 6
    bad = r.read(RawOutput(text="x"), W7, DIGITS)
    assert bad.score is None and bad.raw == "x" and "not a level" in bad.error
    compat = r.read(RawOutput(text="x"), W7, DIGITS, invalid_as_one=True)
    assert compat.score == 1 and compat.extra["invalid"]


def test_expected_readout_math():
    lps = {d: math.log(p) for d, p in zip(DIGITS, [0, 0, 0.25, 0.5, 0.25, 0, 0], strict=False) if p > 0}
    out = get_readout("expected").read(RawOutput(logprobs=lps), W7, DIGITS)
    assert out.score == pytest.approx(4.0)
    assert out.variance == pytest.approx(0.5)
    assert out.entropy == pytest.approx(-(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5)))
    assert sum(out.probs) == pytest.approx(1.0)


def test_expected_renormalises_over_level_tokens():
    # log-probs over the full vocabulary: levels hold only 10% of the mass
    lps = {d: math.log(0.1 / 7) for d in DIGITS}
    out = get_readout("expected").read(RawOutput(logprobs=lps), W7, DIGITS)
    assert out.score == pytest.approx(4.0)
    assert out.probs == pytest.approx([1 / 7] * 7)


def test_softmax_with_absent_levels():
    assert softmax_levels([math.log(0.3), None, math.log(0.1)]) == pytest.approx([0.75, 0, 0.25])
    with pytest.raises(ValueError):
        softmax_levels([None, None])


def test_qalign_and_qbench():
    qa = get_readout("qalign")
    words = qa.candidate_variants(W7)[0]
    assert words == [" bad", " poor", " fair", " good", " excellent"]
    lps = {w: math.log(p) for w, p in zip(words, [0, 0, 0, 0.5, 0.5], strict=False) if p > 0}
    assert qa.read(RawOutput(logprobs=lps), W7, words).score == pytest.approx(4.5)
    assert qa.levels(W7) == 5 and qa.prompt(W7, "global", False).answer_prefix == "The quality of the image is"
    qb = get_readout("qbench")
    w2 = qb.candidate_variants(W7)[1]
    assert qb.read(RawOutput(logprobs={"poor": math.log(0.2), "good": math.log(0.8)}), W7, w2).score == pytest.approx(
        0.8
    )
    assert qb.score_range(W7) == (0.0, 1.0)


def test_errors_pass_through():
    out = get_readout("expected").read(RawOutput(error="server said 400"), W7, DIGITS)
    assert out.score is None and out.error == "server said 400"
    none = get_readout("expected").read(RawOutput(text="5"), W7, DIGITS)
    assert none.score is None and "no log-probabilities" in none.error
    with pytest.raises(ValueError):
        get_readout("median")
