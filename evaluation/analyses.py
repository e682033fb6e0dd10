"""Statistics of the research analyses (the ``analyze`` stage): a rate against its control, with
the interval of the difference and an exact test. Pure numpy/scipy.

* :func:`rate_lift`: two independent samples of outcomes (e.g. honeypot prompts and clean prompts,
  disjoint sets): both rates with Wilson intervals, the difference with Newcombe's hybrid score
  interval, and Fisher's exact test (two-sided) of "the same rate".
* :func:`specificity`: the exact trigger's rate minus the highest variant rate, measured on the
  *same* prompts. Newcombe's interval treats the two rates as independent; with the positive
  correlation same-prompt outcomes have, it is conservative (wider than a paired interval).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

from evaluation.comparison import newcombe_diff
from evaluation.intervals import Estimate, wilson


@dataclass(frozen=True)
class Lift:
    """``treated`` rate minus ``control`` rate, with the difference's interval and a p-value."""

    treated: Estimate
    control: Estimate
    diff: float
    low: float
    high: float
    p_value: float
    test: str = "fisher_exact_two_sided"

    def as_metrics(self, rate_name: str, lift_name: str) -> dict[str, float | int]:
        """``rate_name`` (+ interval parts) for the treated rate; ``lift_name`` (+ ``_ci_low``,
        ``_ci_high``, ``_n`` = the treated count) and ``lift_name_p_value``."""
        out: dict[str, float | int] = dict(self.treated.as_metrics(rate_name))
        out.update({lift_name: self.diff, f"{lift_name}_ci_low": self.low, f"{lift_name}_ci_high": self.high,
                    f"{lift_name}_n": self.treated.n, f"{lift_name}_p_value": self.p_value})
        return out


def _count(outcomes: Sequence[bool]) -> tuple[int, int]:
    return int(sum(bool(o) for o in outcomes)), len(outcomes)


def rate_lift(treated: Sequence[bool], control: Sequence[bool]) -> Lift:
    """Rates of two independent samples of outcomes, their difference and Fisher's exact test."""
    kt, nt = _count(treated)
    kc, nc = _count(control)
    if nt == 0 or nc == 0:
        raise ValueError(f"rate_lift needs outcomes on both sides (treated n={nt}, control n={nc})")
    et, ec = wilson(kt, nt), wilson(kc, nc)
    low, high = newcombe_diff(ec, et)
    p = float(stats.fisher_exact([[kt, nt - kt], [kc, nc - kc]]).pvalue)
    return Lift(et, ec, et.value - ec.value, low, high, p)


def specificity(exact: Estimate, best_variant: Estimate) -> Estimate:
    """``exact - best_variant`` with Newcombe's interval (conservative for same-prompt rates)."""
    low, high = newcombe_diff(best_variant, exact)
    return Estimate(exact.value - best_variant.value, low, high, exact.n, exact.level)
