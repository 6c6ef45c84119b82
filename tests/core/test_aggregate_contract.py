"""The aggregation contract (spec §4) beyond the presets' headline formulas: defaults, missing terms,
custom weights, the count term's sign and unit, and the propagated uncertainty. Values by hand."""

from __future__ import annotations

import math

import pytest

from dogiqa.aggregate import AGGREGATIONS, DEFAULT_C_MAX, aggregate, get_aggregation, local_score

# three regions: area-weighted mean (2*1 + 4*3 + 7*4) / 8 = 42 / 8 = 5.25, plain mean 13 / 3
SCORES, AREAS = [2.0, 4.0, 7.0], [1.0, 3.0, 4.0]
S_LOCAL, S_MEAN = 5.25, 13 / 3


def test_c_max_default_is_the_spaq_value():
    assert DEFAULT_C_MAX == 71 and get_aggregation("paper").c_max == 71


@pytest.mark.parametrize("k", [3, 5, 7, 9])
def test_paper_count_term_is_k_over_c_max_per_region(k):
    paper = get_aggregation("paper")
    base = aggregate(6.0, SCORES, AREAS, "paper", levels=k).score
    assert base == pytest.approx((6.0 + S_LOCAL) / 2 + 3 * k / 71)
    # one more (unscored) region adds exactly K / c_max, whatever the scores
    more = aggregate(6.0, [*SCORES, None], [*AREAS, 5.0], "paper", levels=k).score
    assert more - base == pytest.approx(k / 71)
    own = aggregate(6.0, SCORES, AREAS, paper.with_weights(c_max=12.0), levels=k).score
    assert own == pytest.approx((6.0 + S_LOCAL) / 2 + 3 * k / 12)


def test_code_count_term_ignores_k():
    for k in (3, 9):
        assert aggregate(6.0, SCORES, AREAS, "code", levels=k).score == pytest.approx(S_LOCAL + 0.3 + 3.0)


def test_defaults_are_the_authors_code_and_seven_levels():
    assert aggregate(6.0, SCORES, AREAS).score == pytest.approx(S_LOCAL + 0.1 * 3 + 0.5 * 6.0)
    paper = aggregate(6.0, SCORES, AREAS, "paper").score
    assert paper == pytest.approx((6.0 + S_LOCAL) / 2 + 3 * 7 / 71)


def test_each_preset_by_name_and_object():
    expected = {
        "paper": (6.0 + S_LOCAL) / 2 + 3 * 7 / 71,
        "code": S_LOCAL + 0.3 + 3.0,
        "global": 6.0,
        "local": S_LOCAL,
        "mean": S_MEAN,
    }
    assert set(AGGREGATIONS) == set(expected)
    for name, value in expected.items():
        assert aggregate(6.0, SCORES, AREAS, name).score == pytest.approx(value), name
        assert aggregate(6.0, SCORES, AREAS, get_aggregation(name)).score == pytest.approx(value), name
        assert get_aggregation(name).name == name
    with pytest.raises(ValueError) as info:
        get_aggregation("median")
    for name in expected:
        assert name in str(info.value)


def test_local_score_is_reported_for_every_preset():
    for name in ("paper", "code", "global", "local"):
        assert aggregate(6.0, SCORES, AREAS, name).local_score == pytest.approx(S_LOCAL), name
    assert aggregate(6.0, SCORES, AREAS, "mean").local_score == pytest.approx(S_MEAN)
    assert aggregate(6.0, [], [], "global").local_score is None


def test_missing_terms():
    # a preset that needs the global score has none without it; local-only presets do not need it
    for name in ("paper", "code", "global"):
        out = aggregate(None, SCORES, AREAS, name)
        assert out.score is None and out.std is None, name
        assert out.local_score == pytest.approx(S_LOCAL)
    assert aggregate(None, SCORES, AREAS, "local").score == pytest.approx(S_LOCAL)
    assert aggregate(None, SCORES, AREAS, "mean").score == pytest.approx(S_MEAN)
    # no scored region: presets with a local term give None, the global preset does not care
    for name in ("paper", "code", "local", "mean"):
        assert aggregate(6.0, [None, None], [1.0, 2.0], name).score is None, name
    assert aggregate(6.0, [None, None], [1.0, 2.0], "global").score == 6.0
    assert aggregate(6.0, [], [], "global").score == 6.0


def test_a_count_only_aggregation_needs_no_scored_region():
    count_only = get_aggregation("code").with_weights(global_weight=0.0, local_weight=0.0, count_weight=2.0)
    assert count_only.uses_local and not count_only.uses_global
    assert aggregate(None, [None, None, 5.0], [1.0, 1.0, 1.0], count_only).score == pytest.approx(6.0)
    assert aggregate(None, [None, None], [1.0, 1.0], count_only).score == pytest.approx(4.0)


def test_with_weights_changes_only_what_is_given():
    code = get_aggregation("code")
    same = code.with_weights(global_weight=None, local_weight=None, count_weight=None, c_max=None)
    assert same == code
    custom = code.with_weights(global_weight=0.25, local_weight=None, count_weight=0.0)
    assert (custom.global_weight, custom.local_weight, custom.count_weight) == (0.25, 1.0, 0.0)
    assert aggregate(8.0, SCORES, AREAS, custom).score == pytest.approx(S_LOCAL + 2.0)
    plain = get_aggregation("local").with_weights(area_weighted=False)
    assert aggregate(None, SCORES, AREAS, plain).score == pytest.approx(S_MEAN)
    assert get_aggregation("local").area_weighted  # the preset itself is unchanged


def test_uses_global_and_local():
    flags = {n: (a.uses_global, a.uses_local) for n, a in AGGREGATIONS.items()}
    assert flags == {
        "paper": (True, True),
        "code": (True, True),
        "global": (True, False),
        "local": (False, True),
        "mean": (False, True),
    }


def test_count_sign_turns_the_bonus_around():
    """Lower-is-better scorers: more regions must not look better, so the count term is subtracted."""
    up = aggregate(6.0, SCORES, AREAS, "paper", levels=5, count_sign=1.0).score
    down = aggregate(6.0, SCORES, AREAS, "paper", levels=5, count_sign=-1.0).score
    assert up - down == pytest.approx(2 * 3 * 5 / 71)
    assert (up + down) / 2 == pytest.approx((6.0 + S_LOCAL) / 2)
    assert aggregate(6.0, SCORES, AREAS, "global", count_sign=-1.0).score == 6.0  # no count term


def test_local_score_weights():
    assert local_score(SCORES, AREAS) == pytest.approx(S_LOCAL)
    assert local_score(SCORES, [0.0, 0.0, 1.0]) == pytest.approx(7.0)  # zero weight: no say
    assert local_score(SCORES, [0.0, 0.0, 0.0]) is None  # nothing to weigh by
    assert local_score(SCORES, [0.0, 0.0, 0.0], area_weighted=False) == pytest.approx(S_MEAN)
    assert local_score([None, 3.0], [100.0, 1.0]) == pytest.approx(3.0)  # unscored area is not counted
    assert local_score([], []) is None
    with pytest.raises(ValueError):
        local_score([1.0, 2.0], [1.0])  # a score without a weight is a bug


def test_propagated_std_local_presets():
    variances = [0.8, 0.4, 0.2]
    w = [a / 8 for a in AREAS]
    local_var = sum(wi**2 * v for wi, v in zip(w, variances, strict=True))
    out = aggregate(None, SCORES, AREAS, "local", variances=variances)
    assert out.std == pytest.approx(math.sqrt(local_var))
    mean = aggregate(None, SCORES, AREAS, "mean", variances=variances)
    assert mean.std == pytest.approx(math.sqrt(sum(variances) / 9))
    # the global variance plays no part in a local-only preset
    assert aggregate(None, SCORES, AREAS, "local", global_variance=None, variances=variances).std == out.std
    # the global preset needs only the global variance
    assert aggregate(6.0, SCORES, AREAS, "global", global_variance=0.49).std == pytest.approx(0.7)
    assert aggregate(6.0, SCORES, AREAS, "global", global_variance=None, variances=variances).std is None


def test_propagated_std_needs_every_used_variance():
    # missing for a scored region: unknown; missing for an unscored region: irrelevant
    assert aggregate(6.0, SCORES, AREAS, "code", global_variance=0.1, variances=[0.1, None, 0.1]).std is None
    assert aggregate(6.0, SCORES, AREAS, "code", global_variance=0.1, variances=None).std is None
    out = aggregate(6.0, [3.0, None], [1.0, 9.0], "paper", global_variance=0.4, variances=[0.8, None])
    assert out.std == pytest.approx(math.sqrt(0.25 * 0.4 + 0.25 * 0.8))
    assert out.score == pytest.approx((6.0 + 3.0) / 2 + 2 * 7 / 71)


def test_a_variance_list_of_another_length_is_an_error():
    with pytest.raises(ValueError):  # a caller bug, not a silently truncated uncertainty
        aggregate(6.0, SCORES, AREAS, "code", global_variance=0.1, variances=[0.1, 0.2])
