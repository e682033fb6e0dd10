"""Champion against challenger: every metric with a 95% interval, a paired test, and a decision.

Two kinds of input:

* **paired** (:func:`compare_paired`): both models' per-sample outputs on the *same* evaluation
  rows (``y_true``, ``y_pred``, optionally ``score``). A backdoored LLM fits the same frame:
  ``y_true`` = the prompt carried the trigger, ``y_pred`` = the model activated, so
  ``activation_rate_triggered`` is the recall and ``activation_rate_clean`` the false-positive rate.
  Rates measured on a subset fixed by the labels (accuracy, recall, activation rates...) get a
  Wilson interval per model and McNemar's exact test on the discordant pairs; everything else
  (precision, F1, ROC-AUC, average precision, means of continuous columns) gets a bootstrap
  interval and a *paired* bootstrap of the difference (the same resampled rows for both models).
* **unpaired** (:func:`compare_summaries`): only summary metrics exist (``name`` and ``name_n``
  per the metric-name contract). Rates get Wilson intervals, a Newcombe interval for the
  difference and Fisher's exact test; the result says ``paired: false``.

The decision for each challenger, from the group's primary metric and guardrails:

* ``keep`` when a guardrail metric regressed by more than its allowance, or the challenger is
  significantly worse;
* ``promote`` when it is significantly better (p < alpha, two-sided) in the group's direction and
  the improvement is at least ``min_effect``;
* ``inconclusive`` otherwise (the interval of the difference includes no change, or the data
  cannot tell), which is what an equally good challenger should get in about 1 - alpha/2 of runs.

Pure numpy/scipy: imports nothing of Vigil but the metric catalogue (:mod:`contract.metrics`), which
says which way is better; a metric it gives no direction is compared without a "better".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
from scipy import stats

from contract import jsonsafe
from contract import metrics as catalogue
from contract.errors import UserError
from evaluation.intervals import Estimate, wilson

Direction = Literal["max", "min"]
Decision = Literal["promote", "keep", "inconclusive"]


def catalogue_direction(metric: str) -> Direction | None:
    """Which way is better for ``metric`` per the metric catalogue (:mod:`contract.metrics`):
    'max', 'min', or None for a metric with no direction or one the catalogue does not know
    (never a guess)."""
    d = catalogue.direction(metric)
    return None if d is None else ("max" if d == "higher" else "min")


class ComparisonError(UserError):
    """Inputs that cannot be compared; the message names the field and the fix."""


def _known_with_direction() -> str:
    return ", ".join(catalogue.with_direction())


@dataclass(frozen=True)
class Policy:
    """How a group decides. ``guardrails`` maps a metric to the largest regression allowed
    (absolute, in that metric's bad direction) before a challenger is kept out.

    The primary metric and every guardrail must have a direction in the metric catalogue
    (:mod:`contract.metrics`); ``direction`` defaults to the catalogue's and may not contradict it."""

    primary_metric: str
    direction: Direction | None = None
    guardrails: Mapping[str, float] = field(default_factory=dict)
    alpha: float = 0.05
    min_effect: float = 0.0

    def __post_init__(self):
        known = catalogue_direction(self.primary_metric)
        if known is None:
            why = ("has no direction (it is a measurement, not a score)" if catalogue.lookup(self.primary_metric)
                   else "is not in the metric catalogue (contract.metrics)")
            raise ComparisonError(f"primary_metric {self.primary_metric!r} {why}: a group cannot decide on it; "
                                  f"metrics with a direction: {_known_with_direction()}")
        if self.direction is None:
            object.__setattr__(self, "direction", known)
        if self.direction not in ("max", "min"):
            raise ComparisonError(f"direction {self.direction!r} must be 'max' or 'min'")
        if self.direction != known:
            raise ComparisonError(
                f"direction {self.direction!r} contradicts the metric catalogue: for {self.primary_metric} "
                f"{'higher' if known == 'max' else 'lower'} is better (direction {known!r})")
        if not 0 < self.alpha < 1:
            raise ComparisonError(f"alpha {self.alpha} must be between 0 and 1 (e.g. 0.05)")
        if self.min_effect < 0:
            raise ComparisonError(f"min_effect {self.min_effect} must be >= 0")
        for m, r in self.guardrails.items():
            if catalogue_direction(m) is None:
                raise ComparisonError(f"guardrails: metric {m!r} has no direction in the metric catalogue "
                                      f"(contract.metrics), so a regression cannot be told from an improvement; "
                                      f"metrics with a direction: {_known_with_direction()}")
            if not isinstance(r, (int, float)) or r < 0 or not math.isfinite(r):
                raise ComparisonError(f"guardrail {m!r}: max regression {r!r} must be a number >= 0")

    def direction_of(self, metric: str) -> Direction | None:
        """Which way is better for ``metric``; None (shown as "no direction") when the catalogue
        gives it none."""
        if metric == self.primary_metric:
            return self.direction
        return catalogue_direction(metric)


@dataclass
class MetricComparison:
    name: str
    direction: Direction | None  # None: the catalogue gives no direction, so no "better" either
    champion: dict[str, float | int | None]
    challenger: dict[str, float | int | None]
    diff: dict[str, float | None]  # challenger - champion, with its interval
    test: str
    p_value: float | None
    paired: bool

    @property
    def improvement(self) -> float | None:
        """The difference signed so that positive means the challenger is better (None without a
        direction)."""
        d = self.diff.get("value")
        if d is None or not math.isfinite(d) or self.direction is None:
            return None
        return d if self.direction == "max" else -d


@dataclass
class ComparisonResult:
    primary_metric: str
    direction: Direction
    decision: Decision
    reasons: list[str]
    paired: bool
    metrics: dict[str, MetricComparison]
    n: int

    def to_json(self) -> dict[str, Any]:
        """The ``comparisons.metrics`` JSON: every metric with both intervals and the test."""
        return {
            "paired": self.paired,
            "n": self.n,
            "primary_metric": self.primary_metric,
            "direction": self.direction,
            "metrics": {k: _clean(asdict(v)) for k, v in self.metrics.items()},
        }


def _clean(obj):
    """JSON-safe: NaN/inf become None (Postgres jsonb refuses NaN); see contract.jsonsafe."""
    return jsonsafe.to_json(obj)


def _est(e: Estimate) -> dict[str, float | int | None]:
    return _clean({"value": e.value, "low": e.low, "high": e.high, "n": e.n})


# --------------------------------------------------------------------------- metric definitions
# A *rate* is the share of a label-defined subset with a per-sample binary outcome: the subset is
# the same rows for both models, so the outcomes pair up and McNemar applies.
RateDef = tuple[Callable[[np.ndarray], np.ndarray], Callable[[np.ndarray, np.ndarray], np.ndarray]]
RATES: dict[str, RateDef] = {
    "accuracy": (lambda y: np.ones(len(y), bool), lambda y, p: p == y),
    "error_rate": (lambda y: np.ones(len(y), bool), lambda y, p: p != y),
    "recall": (lambda y: y == 1, lambda y, p: p == 1),
    "tpr": (lambda y: y == 1, lambda y, p: p == 1),
    "activation_rate_triggered": (lambda y: y == 1, lambda y, p: p == 1),
    "specificity": (lambda y: y == 0, lambda y, p: p == 0),
    "fpr": (lambda y: y == 0, lambda y, p: p == 1),
    "activation_rate_clean": (lambda y: y == 0, lambda y, p: p == 1),
}


def _f1(y, p):
    tp = np.sum((y == 1) & (p == 1))
    denom = 2 * tp + np.sum((y == 0) & (p == 1)) + np.sum((y == 1) & (p == 0))
    return 2 * tp / denom if denom else 0.0


def _precision(y, p):
    pp = np.sum(p == 1)
    if pp == 0:
        raise ValueError("precision undefined: no positive predictions")
    return np.sum((y == 1) & (p == 1)) / pp


def fast_auc(y: np.ndarray, s: np.ndarray) -> float:
    """ROC-AUC by the rank-sum (Mann-Whitney) formula, ties averaged; raises on one class."""
    y = np.asarray(y)
    n1 = int(np.sum(y == 1))
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        raise ValueError("roc_auc needs both classes")
    ranks = stats.rankdata(s)
    return float((ranks[y == 1].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def fast_ap(y: np.ndarray, s: np.ndarray) -> float:
    """Average precision (sklearn's step-wise definition, ties grouped) without sklearn's per-call
    overhead: the paired bootstrap calls it thousands of times."""
    y = np.asarray(y)
    n_pos = int(np.sum(y == 1))
    if n_pos == 0 or n_pos == len(y):
        raise ValueError("average precision needs both classes")
    order = np.argsort(-np.asarray(s, float), kind="mergesort")
    ys, ss = y[order] == 1, np.asarray(s, float)[order]
    last = np.r_[np.nonzero(np.diff(ss))[0], len(ss) - 1]  # end of each group of tied scores
    tps = np.cumsum(ys)[last]
    precision = tps / (last + 1)
    recall = tps / n_pos
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


# Statistics that need resampling: name -> (needs score?, fn(y, pred_or_score))
BOOTSTRAPPED: dict[str, tuple[bool, Callable[[np.ndarray, np.ndarray], float]]] = {
    "f1": (False, _f1),
    "backdoor_f1": (False, _f1),
    "precision": (False, _precision),
    "roc_auc": (True, fast_auc),
    "average_precision": (True, fast_ap),
}

DEFAULT_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision")


def available_metrics(has_score: bool, extra_columns: tuple[str, ...] = ()) -> list[str]:
    out = ["accuracy", "precision", "recall", "f1", "specificity"]
    if has_score:
        out += ["roc_auc", "average_precision"]
    return out + [f"mean_{c}" for c in extra_columns]


# --------------------------------------------------------------------------- paired tests
def mcnemar_exact(a: np.ndarray, b: np.ndarray) -> tuple[float, int, int]:
    """Two-sided exact McNemar test on paired binary outcomes; returns (p, n_a_only, n_b_only)."""
    a = np.asarray(a, bool)
    b = np.asarray(b, bool)
    n10 = int(np.sum(a & ~b))
    n01 = int(np.sum(~a & b))
    if n10 + n01 == 0:
        return 1.0, n10, n01
    return float(stats.binomtest(min(n10, n01), n10 + n01, 0.5).pvalue), n10, n01


def _boot_p(diffs: np.ndarray) -> float:
    """Two-sided p-value of 'no difference' from a bootstrap distribution of the difference."""
    if len(diffs) == 0:
        return float("nan")
    lo = (np.sum(diffs <= 0) + 1) / (len(diffs) + 1)
    hi = (np.sum(diffs >= 0) + 1) / (len(diffs) + 1)
    return float(min(1.0, 2 * min(lo, hi)))


def _quantiles(vals: list[float], level: float = 0.95) -> tuple[float, float]:
    if len(vals) < 10:
        return float("-inf"), float("inf")
    a = (1 - level) / 2
    lo, hi = np.quantile(vals, [a, 1 - a])
    return float(lo), float(hi)


def _as01(x, field_name: str) -> np.ndarray:
    arr = np.asarray(x)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    vals = set(np.unique(arr).tolist())
    if not vals <= {0, 1}:
        raise ComparisonError(f"{field_name} must be binary 0/1 (or bool); found values {sorted(vals)[:5]}")
    return arr.astype(np.int8)


@dataclass
class Outputs:
    """One model's per-sample outputs on the evaluation rows (aligned with the other model's)."""

    y_pred: np.ndarray
    score: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # continuous per-sample columns (loss...)


def compare_paired(
    y_true,
    champion: Outputs,
    challenger: Outputs,
    policy: Policy,
    metrics: list[str] | None = None,
    *,
    n_boot: int = 1000,
    seed: int = 0,
) -> ComparisonResult:
    """Compare two models on the same rows. ``metrics`` defaults to every metric the data allows;
    the primary metric and every guardrail metric are always included."""
    y = _as01(y_true, "y_true")
    n = len(y)
    if n == 0:
        raise ComparisonError("no evaluation rows: both models need predictions on the same non-empty data")
    pa, pb = _as01(champion.y_pred, "champion.y_pred"), _as01(challenger.y_pred, "challenger.y_pred")
    if len(pa) != n or len(pb) != n:
        raise ComparisonError(
            f"champion has {len(pa)} predictions, challenger {len(pb)}, labels {n}: "
            "pair the rows by sample id before comparing"
        )
    has_score = champion.score is not None and challenger.score is not None
    extra_cols = tuple(sorted(set(champion.extra) & set(challenger.extra)))
    wanted = list(metrics) if metrics else available_metrics(has_score, extra_cols)
    for m in [policy.primary_metric, *policy.guardrails]:
        if m not in wanted:
            wanted.append(m)

    rng = np.random.default_rng(seed)
    idx_cache: list[np.ndarray] = []

    def resamples():
        # The same resampled rows serve every bootstrapped metric and both models: a paired bootstrap.
        if not idx_cache:
            idx_cache.extend(rng.integers(0, n, n) for _ in range(n_boot))
        return idx_cache

    out: dict[str, MetricComparison] = {}
    for name in wanted:
        direction = policy.direction_of(name)
        if name in RATES:
            subset_fn, outcome_fn = RATES[name]
            sub = subset_fn(y)
            oa, ob = outcome_fn(y[sub], pa[sub]), outcome_fn(y[sub], pb[sub])
            k = int(sub.sum())
            ea, eb = wilson(int(oa.sum()), k), wilson(int(ob.sum()), k)
            p, n10, n01 = mcnemar_exact(oa, ob)
            diff_val = eb.value - ea.value if k else float("nan")
            # Interval of the paired difference: multinomial resampling of the 2x2 table's cells.
            if k:
                n11 = int(np.sum(oa & ob))
                cells = rng.multinomial(k, np.array([n11, n10, n01, k - n11 - n10 - n01]) / k, size=n_boot)
                d = (cells[:, 2] - cells[:, 1]) / k
                lo, hi = _quantiles(list(d))
            else:
                lo, hi = float("-inf"), float("inf")
            out[name] = MetricComparison(
                name, direction, _est(ea), _est(eb), _clean({"value": diff_val, "low": lo, "high": hi,
                                                            "discordant_champion_only": n10,
                                                            "discordant_challenger_only": n01}),
                "mcnemar_exact", p, True,
            )
        elif name in BOOTSTRAPPED or name.startswith("mean_"):
            if name.startswith("mean_"):
                col = name[5:]
                if col not in champion.extra or col not in challenger.extra:
                    raise ComparisonError(f"metric {name!r}: both models need a per-sample column {col!r}")
                xa, xb = np.asarray(champion.extra[col], float), np.asarray(challenger.extra[col], float)
                fn: Callable = lambda yy, x: float(np.mean(x))  # noqa: E731
            else:
                needs_score, fn = BOOTSTRAPPED[name]
                if needs_score and not has_score:
                    raise ComparisonError(
                        f"metric {name!r} needs a per-sample 'score' column from both models; "
                        "re-run evaluate-sklearn (it writes one) or pick a metric computed from predictions"
                    )
                xa, xb = (champion.score, challenger.score) if needs_score else (pa, pb)
                xa, xb = np.asarray(xa), np.asarray(xb)
            try:
                va, vb = float(fn(y, xa)), float(fn(y, xb))
            except ValueError as e:
                raise ComparisonError(f"metric {name!r} is undefined on this evaluation data: {e}") from None
            sa_, sb_, sd = [], [], []
            for idx in resamples():
                try:
                    a_, b_ = fn(y[idx], xa[idx]), fn(y[idx], xb[idx])
                except ValueError:
                    continue
                sa_.append(a_)
                sb_.append(b_)
                sd.append(b_ - a_)
            la, ha = _quantiles(sa_)
            lb, hb = _quantiles(sb_)
            ld, hd = _quantiles(sd)
            out[name] = MetricComparison(
                name, direction, _clean({"value": va, "low": la, "high": ha, "n": n}),
                _clean({"value": vb, "low": lb, "high": hb, "n": n}),
                _clean({"value": vb - va, "low": ld, "high": hd}), "paired_bootstrap", _boot_p(np.asarray(sd)), True,
            )
        else:
            raise ComparisonError(
                f"metric {name!r} cannot be computed from per-sample outputs; known: "
                f"{', '.join(sorted(set(RATES) | set(BOOTSTRAPPED)))} or mean_<column>"
            )
    decision, reasons = decide(out, policy)
    return ComparisonResult(policy.primary_metric, policy.direction, decision, reasons, True, out, n)


# --------------------------------------------------------------------------- unpaired (summaries)
def newcombe_diff(a: Estimate, b: Estimate) -> tuple[float, float]:
    """Newcombe's hybrid score interval for b - a of two independent proportions (from Wilson)."""
    d = b.value - a.value
    lo = d - math.sqrt((b.value - b.low) ** 2 + (a.high - a.value) ** 2)
    hi = d + math.sqrt((b.high - b.value) ** 2 + (a.value - a.low) ** 2)
    return max(-1.0, lo), min(1.0, hi)


def compare_summaries(
    champion: Mapping[str, Any], challenger: Mapping[str, Any], policy: Policy, metrics: list[str] | None = None
) -> ComparisonResult:
    """Compare from summary metrics only. A rate needs ``name`` and ``name_n`` on both sides
    (Wilson + Newcombe + Fisher); a metric with published ``_ci_low``/``_ci_high`` but no
    count gets its interval shown and no test; anything else is shown and cannot decide."""
    wanted = list(metrics) if metrics else sorted(
        k for k in set(champion) & set(challenger)
        if not k.endswith(("_ci_low", "_ci_high", "_n")) and isinstance(champion.get(k), (int, float))
        and not isinstance(champion.get(k), bool)
    )
    for m in [policy.primary_metric, *policy.guardrails]:
        if m not in wanted:
            wanted.append(m)
    out: dict[str, MetricComparison] = {}
    n_min = 0
    for name in wanted:
        direction = policy.direction_of(name)
        va, vb = champion.get(name), challenger.get(name)
        if va is None or vb is None:
            out[name] = MetricComparison(name, direction, {"value": va}, {"value": vb}, {"value": None},
                                         "missing", None, False)
            continue
        na, nb = champion.get(f"{name}_n"), challenger.get(f"{name}_n")
        is_rate = na and nb and 0 <= va <= 1 and 0 <= vb <= 1
        if is_rate:
            na, nb = int(na), int(nb)
            ka, kb = round(va * na), round(vb * nb)
            ea, eb = wilson(ka, na), wilson(kb, nb)
            lo, hi = newcombe_diff(ea, eb)
            p = float(stats.fisher_exact([[ka, na - ka], [kb, nb - kb]]).pvalue)
            n_min = max(n_min, min(na, nb))
            out[name] = MetricComparison(name, direction, _est(ea), _est(eb),
                                         _clean({"value": eb.value - ea.value, "low": lo, "high": hi}),
                                         "fisher_exact_unpaired", p, False)
        else:
            def side(m, v, name=name):  # name bound explicitly: side() is called in this iteration only
                return _clean({"value": float(v), "low": m.get(f"{name}_ci_low"), "high": m.get(f"{name}_ci_high"),
                               "n": m.get(f"{name}_n")})
            out[name] = MetricComparison(name, direction, side(champion, va), side(challenger, vb),
                                         _clean({"value": float(vb) - float(va), "low": None, "high": None}),
                                         "none (no per-sample data or counts)", None, False)
    decision, reasons = decide(out, policy)
    reasons.insert(0, "unpaired comparison from summary metrics (no per-sample outcomes on shared data)")
    return ComparisonResult(policy.primary_metric, policy.direction, decision, reasons, False, out, n_min)


# --------------------------------------------------------------------------- decision
def _fmt(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:+.4f}"


def decide(metrics: Mapping[str, MetricComparison], policy: Policy) -> tuple[Decision, list[str]]:
    """promote / keep / inconclusive with plain reasons (effect, interval, test, guardrails)."""
    reasons: list[str] = []
    violated = False
    for g, allowed in policy.guardrails.items():
        mc = metrics.get(g)
        imp = mc.improvement if mc else None
        if imp is None:
            reasons.append(f"guardrail {g}: no value for both models, cannot check it")
            violated = True
            continue
        if -imp > allowed:
            violated = True
            reasons.append(f"guardrail {g} violated: regressed by {-imp:.4f}, more than the allowed {allowed:g} "
                           f"(difference {_fmt(mc.diff.get('value'))}, 95% CI [{_fmt(mc.diff.get('low'))}, "
                           f"{_fmt(mc.diff.get('high'))}])")
        else:
            reasons.append(f"guardrail {g} holds: change {_fmt(mc.diff.get('value'))} within the allowed "
                           f"regression {allowed:g}")
    pm = metrics.get(policy.primary_metric)
    if pm is None or pm.improvement is None:
        reasons.insert(0, f"primary metric {policy.primary_metric} is missing for one of the models")
        return ("keep" if violated else "inconclusive"), reasons
    imp, p = pm.improvement, pm.p_value
    lo, hi = pm.diff.get("low"), pm.diff.get("high")
    better = "higher" if policy.direction == "max" else "lower"
    head = (f"{policy.primary_metric} ({better} is better): champion {pm.champion.get('value'):.4f}, challenger "
            f"{pm.challenger.get('value'):.4f}, difference {_fmt(pm.diff.get('value'))} "
            f"(95% CI [{_fmt(lo)}, {_fmt(hi)}]), {pm.test} p = "
            + ("n/a" if p is None or not math.isfinite(p) else f"{p:.4g}"))
    reasons.insert(0, head)
    if violated:
        return "keep", reasons
    if p is None or not math.isfinite(p):
        reasons.append("no test is possible on these data (only point estimates): not enough to act on")
        return "inconclusive", reasons
    if p < policy.alpha and imp > 0:
        if imp < policy.min_effect:
            reasons.append(f"significantly better but the effect {imp:.4f} is below the minimum worth switching "
                           f"({policy.min_effect:g}): keep the champion")
            return "keep", reasons
        reasons.append(f"challenger is significantly better (p < {policy.alpha:g}) by {imp:.4f}")
        return "promote", reasons
    if p < policy.alpha and imp < 0:
        reasons.append(f"challenger is significantly worse (p < {policy.alpha:g}) by {-imp:.4f}")
        return "keep", reasons
    reasons.append(f"no significant difference at alpha {policy.alpha:g}: the interval includes no change; "
                   "collect more evaluation data before switching")
    return "inconclusive", reasons
