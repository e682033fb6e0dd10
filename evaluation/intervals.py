"""Confidence intervals for the numbers Vigil prints. Small samples never get a bare percentage."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Estimate:
    """A point estimate with a two-sided interval at ``level``."""

    value: float
    low: float
    high: float
    n: int
    level: float = 0.95

    def as_metrics(self, name: str) -> dict[str, float | int]:
        """``{name, name_ci_low, name_ci_high, name_n}``: the metric-name contract for intervals."""
        return {name: self.value, f"{name}_ci_low": self.low, f"{name}_ci_high": self.high, f"{name}_n": self.n}


def wilson(successes: int, n: int, level: float = 0.95) -> Estimate:
    """Wilson score interval for a binomial rate; well behaved at 0, 1 and small n."""
    if n < 0 or successes < 0 or successes > n:
        raise ValueError(f"wilson: need 0 <= successes <= n, got successes={successes}, n={n}")
    if n == 0:
        return Estimate(float("nan"), 0.0, 1.0, 0, level)
    z = float(stats.norm.ppf(0.5 + level / 2))
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    # at k=0 / k=n the bound is exactly 0 / 1; rounding error would otherwise print 1e-18
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return Estimate(p, low, high, n, level)


def ratio_interval(num: Estimate, den: Estimate, n_boot: int = 4000, seed: int = 0) -> Estimate:
    """Interval for a ratio of two independent rates (e.g. persistence = after / before).

    Parametric bootstrap from Beta posteriors (Jeffreys prior) of each rate, so that a rate of
    0 or 1 still carries its uncertainty.
    """
    if den.n == 0 or num.n == 0:
        return Estimate(float("nan"), 0.0, float("inf"), 0, num.level)
    rng = np.random.default_rng(seed)
    k_num, k_den = round(num.value * num.n), round(den.value * den.n)
    a = rng.beta(k_num + 0.5, num.n - k_num + 0.5, n_boot)
    b = rng.beta(k_den + 0.5, den.n - k_den + 0.5, n_boot)
    r = a / np.maximum(b, 1e-12)
    point = num.value / den.value if den.value > 0 else float("nan")
    alpha = (1 - num.level) / 2
    lo, hi = np.quantile(r, [alpha, 1 - alpha])
    return Estimate(point, float(lo), float(hi), min(num.n, den.n), num.level)


def bootstrap(
    statistic: Callable[..., float],
    *arrays: Sequence[float] | np.ndarray,
    n_boot: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Estimate:
    """Percentile bootstrap of ``statistic(*arrays)``, resampling rows jointly across arrays.

    Resamples on which the statistic is undefined (e.g. AUROC of a one-class resample) are
    skipped; if most are, the interval is reported as the full range it could take.
    """
    cols = [np.asarray(a) for a in arrays]
    n = len(cols[0])
    if any(len(c) != n for c in cols):
        raise ValueError("bootstrap: all arrays must have the same length")
    point = float(statistic(*cols))
    if n < 2:
        return Estimate(point, float("-inf"), float("inf"), n, level)
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        try:
            v = statistic(*(c[idx] for c in cols))
        except ValueError:
            continue
        if v is not None and np.isfinite(v):
            vals.append(v)
    if len(vals) < n_boot // 2:
        return Estimate(point, float("-inf"), float("inf"), n, level)
    alpha = (1 - level) / 2
    lo, hi = np.quantile(vals, [alpha, 1 - alpha])
    return Estimate(point, float(lo), float(hi), n, level)


def auc_score_interval(auc: float, n_pos: int, n_neg: int, level: float = 0.95) -> Estimate:
    """Score-type interval for an AUC (Newcombe 2006, "Confidence intervals for an effect size
    measure based on the Mann-Whitney statistic. Part 2", method 5): the Hanley-McNeil variance
    with N* = (m + n)/2 - 1, inverted like Wilson's interval. Unlike a percentile bootstrap it
    does not collapse to a point at perfect separation (AUC 0 or 1)."""
    m, n = int(n_pos), int(n_neg)
    if m < 1 or n < 1:
        return Estimate(float(auc), 0.0, 1.0, m + n, level)
    z2 = float(stats.norm.ppf(0.5 + level / 2)) ** 2
    k = (m + n) / 2 - 2  # N* - 1

    def gap(t: float) -> float:
        var = t * (1 - t) / (m * n) * (1 + k * (1 - t) / (2 - t) + k * t / (1 + t))
        return (auc - t) ** 2 - z2 * var

    from scipy.optimize import brentq

    # at AUC 1 (0) the variance vanishes too, so t = 1 (0) is a root as well: step off it
    inner_lo, inner_hi = min(auc, 1 - 1e-12), max(auc, 1e-12)
    low = 0.0 if auc <= 0 or gap(0.0) <= 0 else brentq(gap, 0.0, inner_lo)
    high = 1.0 if auc >= 1 or gap(1.0) <= 0 else brentq(gap, inner_hi, 1.0)
    return Estimate(float(auc), float(low), float(high), m + n, level)


def mean_interval(values: Sequence[float] | np.ndarray, level: float = 0.95) -> Estimate:
    """Student-t interval for a mean (continuous scores such as per-sample loss)."""
    x = np.asarray(values, dtype=float)
    n = len(x)
    if n == 0:
        return Estimate(float("nan"), float("nan"), float("nan"), 0, level)
    m = float(x.mean())
    if n == 1:
        return Estimate(m, float("-inf"), float("inf"), 1, level)
    half = float(stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Estimate(m, m - half, m + half, n, level)
