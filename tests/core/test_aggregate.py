import json
import math

import pytest

from dogiqa.aggregate import aggregate, get_aggregation, local_score

from shared_data import shared_path


def test_local_score_weighted_and_plain():
    assert local_score([4, 6], [1, 3]) == pytest.approx(5.5)
    assert local_score([4, 6], [1, 3], area_weighted=False) == pytest.approx(5.0)
    assert local_score([None, 6], [1, 3]) == pytest.approx(6.0)
    assert local_score([None], [1]) is None


def test_presets_by_hand():
    scores, weights = [5, 3, 6], [5025, 7845, 63930]
    s_loc = (5 * 5025 + 3 * 7845 + 6 * 63930) / 76800
    assert aggregate(4, scores, weights, "code").score == pytest.approx(s_loc + 0.3 + 2.0)
    assert aggregate(4, scores, weights, "paper", levels=7).score == pytest.approx((4 + s_loc) / 2 + 3 * 7 / 71)
    paper_cmax = aggregate(4, scores, weights, get_aggregation("paper").with_weights(c_max=3))
    assert paper_cmax.score == pytest.approx((4 + s_loc) / 2 + 7)
    assert aggregate(4, scores, weights, "global").score == 4
    assert aggregate(None, scores, weights, "local").score == pytest.approx(s_loc)
    assert aggregate(4, scores, weights, "mean").score == pytest.approx(14 / 3)
    custom = get_aggregation("code").with_weights(count_weight=0.0, global_weight=1.0)
    assert aggregate(4, scores, weights, custom).score == pytest.approx(s_loc + 4)


def test_missing_terms_give_none_and_count_sign():
    assert aggregate(None, [5], [1], "code").score is None
    assert aggregate(5, [None], [1], "code").score is None
    assert aggregate(5, [None], [1], "global").score == 5
    assert aggregate(2.0, [3.0], [1], "code", count_sign=-1).score == pytest.approx(3 - 0.1 + 1)


def test_uncertainty_propagation():
    out = aggregate(4, [5, 3], [1, 1], "code", global_variance=0.4, variances=[0.2, 0.6])
    assert out.std == pytest.approx(math.sqrt(0.25 * 0.4 + 0.25 * 0.2 + 0.25 * 0.6))
    assert aggregate(4, [5], [1], "code", global_variance=None, variances=[0.1]).std is None


def test_unknown_aggregation():
    with pytest.raises(ValueError, match="unknown aggregation"):
        get_aggregation("median")


def test_reference_code_aggregate_of_the_authors():
    cases = json.loads(shared_path("reference", "regions", "cases.json").read_text())["cases"]
    for case in cases:
        weights = [r["area_weight"] for r in case["regions"]]
        out = aggregate(case["global_score"], case["local_scores"], weights, "code")
        assert out.score == pytest.approx(case["aggregate_code_lambda1_0.1_lambda2_0.5"], abs=1e-9), case["name"]
