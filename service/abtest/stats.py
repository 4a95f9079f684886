"""Small, dependency-free statistics for A/B analysis (the service does not ship scipy).

Normal quantiles and tails come from the standard library's ``statistics.NormalDist``; the sign
test is an exact binomial tail computed in log space so it holds for thousands of trials.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist
from typing import NamedTuple

_NORMAL = NormalDist()


def z_quantile(confidence: float) -> float:
    """Two-sided critical value: 1.959964 for 0.95."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return _NORMAL.inv_cdf(0.5 + confidence / 2)


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion.

    Unlike the Wald interval it stays inside [0, 1] and is not degenerate at 0 or ``trials``
    successes. With no trials nothing is known: (0, 1).
    """
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")
    if trials == 0:
        return 0.0, 1.0
    z = z_quantile(confidence)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


class ZTest(NamedTuple):
    z: float
    """Positive when the treatment's rate is above the control's."""
    p_value: float
    """Two-sided."""


def two_proportion_ztest(x_treat: int, n_treat: int, x_ctrl: int, n_ctrl: int) -> ZTest:
    """Pooled two-proportion z-test (equivalent to the 2x2 chi-square without continuity correction).

    An empty group gives (nan, nan): there is nothing to test. When the pooled rate is 0 or 1 both
    groups are identical (all zeros or all ones) and the test is (0, 1).
    """
    if n_treat == 0 or n_ctrl == 0:
        return ZTest(math.nan, math.nan)
    pooled = (x_treat + x_ctrl) / (n_treat + n_ctrl)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n_treat + 1 / n_ctrl))
    if se == 0:
        return ZTest(0.0, 1.0)
    z = (x_treat / n_treat - x_ctrl / n_ctrl) / se
    return ZTest(z, min(1.0, 2 * _NORMAL.cdf(-abs(z))))


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (several arms tested against one control); nan stays nan."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if not math.isnan(p))
    m = len(indexed)
    adjusted = [math.nan] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test of wins against losses (ties dropped beforehand): the binomial
    probability, under p = 1/2, of an outcome at least as lopsided. 1.0 when there are no trials."""
    n = wins + losses
    if n == 0:
        return 1.0
    low = min(wins, losses)
    log_half_n = n * math.log(2)
    log_terms = [math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) - log_half_n
                 for i in range(low + 1)]
    top = max(log_terms)
    tail = math.exp(top) * sum(math.exp(t - top) for t in log_terms)
    return min(1.0, 2 * tail)
