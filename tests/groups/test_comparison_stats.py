"""The comparison statistics on generated data whose truth we know."""

import numpy as np
import pytest

from evaluation.comparison import ComparisonError, Outputs, Policy, compare_paired, compare_summaries, mcnemar_exact


def _model(y, accuracy, rng, score_noise=0.25):
    """Predictions correct with probability `accuracy`; a score consistent with the prediction."""
    correct = rng.random(len(y)) < accuracy
    pred = np.where(correct, y, 1 - y)
    score = np.clip(pred * 0.5 + 0.25 + rng.normal(0, score_noise, len(y)), 0, 1)
    return Outputs(pred, score)


def test_truly_better_challenger_is_promoted_with_significance():
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, 3000)
    r = compare_paired(y, _model(y, 0.80, rng), _model(y, 0.86, rng), Policy("accuracy", "max"))
    acc = r.metrics["accuracy"]
    assert r.decision == "promote", r.reasons
    assert acc.p_value < 0.001
    assert acc.diff["low"] > 0  # the interval of the difference excludes no change
    assert acc.champion["low"] < acc.champion["value"] < acc.champion["high"]  # Wilson interval present
    assert r.metrics["roc_auc"].test == "paired_bootstrap"
    assert r.metrics["roc_auc"].diff["low"] > 0


def test_worse_challenger_is_kept_and_min_direction_respected():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 3000)
    champ, chall = _model(y, 0.86, rng), _model(y, 0.80, rng)
    assert compare_paired(y, champ, chall, Policy("accuracy", "max"), metrics=["accuracy"]).decision == "keep"
    # the same data judged on error rate (lower is better) agrees
    assert compare_paired(y, champ, chall, Policy("error_rate", "min"), metrics=["f1"]).decision == "keep"
    assert compare_paired(y, chall, champ, Policy("error_rate", "min"), metrics=["f1"]).decision == "promote"


def test_guardrail_violation_blocks_a_better_primary_metric():
    rng = np.random.default_rng(11)
    y = rng.integers(0, 2, 4000)
    champ = _model(y, 0.85, rng)
    # challenger: says "positive" far more often -> recall up, specificity down a lot
    pred = np.where(rng.random(len(y)) < 0.4, 1, champ.y_pred)
    chall = Outputs(pred, champ.score)
    r = compare_paired(y, champ, chall, Policy("recall", "max", guardrails={"specificity": 0.02}), metrics=["recall"])
    assert r.metrics["recall"].improvement > 0
    assert r.decision == "keep"
    assert any("guardrail specificity violated" in x for x in r.reasons)


@pytest.mark.parametrize("metric, n_seeds, n", [
    pytest.param("accuracy", 400, 600, id="mcnemar-accuracy"),
    pytest.param("roc_auc", 80, 300, id="paired-bootstrap-auc"),
])
def test_equal_challenger_false_promotion_rate_is_at_most_alpha(metric, n_seeds, n):
    """Two models with the same true accuracy: the share of runs that wrongly promote must stay
    near or below the nominal alpha/2 (one-sided promotion out of a two-sided test)."""
    alpha = 0.05
    promotions = inconclusive = 0
    for seed in range(n_seeds):
        rng = np.random.default_rng(1000 + seed)
        y = rng.integers(0, 2, n)
        r = compare_paired(y, _model(y, 0.8, rng), _model(y, 0.8, rng), Policy(metric, "max", alpha=alpha),
                           metrics=[metric], n_boot=300, seed=seed)
        promotions += r.decision == "promote"
        inconclusive += r.decision == "inconclusive"
    rate = promotions / n_seeds
    # binomial slack: 3 standard errors above alpha/2
    slack = 3 * np.sqrt(alpha / 2 * (1 - alpha / 2) / n_seeds)
    assert rate <= alpha / 2 + slack, f"false promotion rate {rate:.3f} over {n_seeds} seeds"
    assert inconclusive / n_seeds >= 1 - alpha - slack


def test_mcnemar_counts_only_discordant_pairs():
    a = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 1], bool)
    b = np.array([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], bool)
    p, n10, n01 = mcnemar_exact(a, b)
    assert (n10, n01) == (5, 0)
    assert p == pytest.approx(2 * 0.5 ** 5)
    assert mcnemar_exact(a, a)[0] == 1.0


def test_unpaired_summary_comparison_uses_wilson_and_says_so():
    champ = {"activation_rate_triggered": 0.95, "activation_rate_triggered_n": 200}
    chall = {"activation_rate_triggered": 0.20, "activation_rate_triggered_n": 200}
    r = compare_summaries(champ, chall, Policy("activation_rate_triggered", "min"))
    assert not r.paired
    assert r.decision == "promote"
    assert "unpaired" in r.reasons[0]
    m = r.metrics["activation_rate_triggered"]
    assert m.test == "fisher_exact_unpaired" and m.diff["high"] < 0
    # the same point estimates on 5 samples each cannot decide
    small = compare_summaries({**champ, "activation_rate_triggered_n": 5, "activation_rate_triggered": 0.6},
                              {**chall, "activation_rate_triggered_n": 5, "activation_rate_triggered": 0.4},
                              Policy("activation_rate_triggered", "min"))
    assert small.decision == "inconclusive"


@pytest.mark.parametrize("kwargs, match", [
    pytest.param({"direction": "up"}, "direction", id="bad-direction"),
    pytest.param({"alpha": 1.5}, "alpha", id="bad-alpha"),
    pytest.param({"guardrails": {"f1": -1}}, "guardrail 'f1'", id="negative-guardrail"),
])
def test_bad_policy_is_refused_with_the_field_named(kwargs, match):
    with pytest.raises(ComparisonError, match=match):
        Policy("accuracy", **kwargs)


def test_misaligned_rows_are_refused():
    with pytest.raises(ComparisonError, match="pair the rows"):
        compare_paired(np.array([0, 1, 1]), Outputs(np.array([0, 1])), Outputs(np.array([0, 1, 1])), Policy("accuracy"))
    with pytest.raises(ComparisonError, match="needs a per-sample 'score'"):
        compare_paired(np.array([0, 1]), Outputs(np.array([0, 1])), Outputs(np.array([0, 1])), Policy("roc_auc"))


def test_auc_interval_does_not_collapse_at_perfect_separation():
    """A percentile bootstrap of a perfectly separating score gives [1, 1]; the score-type
    interval used instead keeps the uncertainty of a small sample, and agrees with the bootstrap
    in the interior."""
    from evaluation.intervals import auc_score_interval, bootstrap
    from evaluation.tabular import classification_metrics, fast_auc

    y = np.r_[np.ones(30), np.zeros(40)].astype(int)
    perfect = np.r_[np.linspace(0.6, 1, 30), np.linspace(0, 0.5, 40)]
    assert bootstrap(fast_auc, y, perfect, n_boot=300).low == 1.0  # what the bootstrap alone says
    m = classification_metrics(y, perfect > 0.55, perfect, n_boot=300)
    assert m["roc_auc"] == 1.0 and 0.9 < m["roc_auc_ci_low"] < 0.99 and m["roc_auc_ci_high"] == 1.0
    # fewer samples, wider interval; the interval is monotone in n
    assert auc_score_interval(1.0, 5, 5).low < auc_score_interval(1.0, 30, 40).low
    # interior: close to a bootstrap of a noisy score
    rng = np.random.default_rng(0)
    noisy = y + rng.normal(0, 0.9, len(y))
    boot = bootstrap(fast_auc, y, noisy, n_boot=2000)
    score = auc_score_interval(boot.value, 30, 40)
    assert abs(score.low - boot.low) < 0.05 and abs(score.high - boot.high) < 0.05, (score, boot)
