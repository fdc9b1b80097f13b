"""CUPED: a two-arm comparison with its variance reduced by a covariate the treatment cannot move.

Deng, Xu, Kohavi and Walker (2013): with a per-unit covariate ``X`` measured before the treatment
could act, ``Y - theta (X - E[X])`` has the same expectation in each arm and, with ``theta =
cov(Y, X) / var(X)``, a variance ``(1 - rho^2)`` times that of ``Y``: the same test on fewer
units, or a smaller effect on the same ones. :func:`compare_ratios_cuped` does it for a ratio
metric whose unit of analysis is finer than the unit of randomisation (harmful views / views with
authors randomised), through each arm's delta-method linearisation (Deng et al. 2018):
``psi_i = (num_i - R den_i) / mean(den)``, the same for the covariate's ratio, ``theta`` pooled
over both arms, and the adjusted ratio ``R - theta (R_x - R_x_pooled)``. The covariate may be a
pre-experiment metric of the unit or a pre-treatment part of the experiment itself (what happens
before the treatment's first decision). The z-test is :func:`mlsd.comparisons.compare_estimates`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from mlsd.comparisons import MetricComparison, compare_estimates


@dataclass(frozen=True)
class CupedComparison:
    """The adjusted comparison, ``theta`` and the variance of the adjusted diff over the plain
    one (``1 - rho^2``: 0.5 halves the units a decision needs)."""

    comparison: MetricComparison
    theta: float
    variance_ratio: float

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.comparison.to_dict(),
            "theta": self.theta,
            "variance_ratio": self.variance_ratio,
        }


def _linearised(num: np.ndarray, den: np.ndarray) -> tuple[float, np.ndarray]:
    """The ratio of sums and each unit's influence on it, ``(num_i - R den_i) / mean(den)``."""
    ratio = float(num.sum() / den.sum())
    return ratio, (num - ratio * den) / float(den.mean())


def _arrays(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    if any(not np.isfinite(a).all() for a in out):
        raise ValueError("values must be finite")
    return out


def compare_ratios_cuped(
    metric_c: tuple[np.ndarray, np.ndarray],
    metric_t: tuple[np.ndarray, np.ndarray],
    covariate_c: tuple[np.ndarray, np.ndarray],
    covariate_t: tuple[np.ndarray, np.ndarray],
    alpha: float = 0.05,
    metric: str = "ratio",
    higher_is_better: bool = True,
) -> CupedComparison:
    """``metric_*``: per-unit numerators and denominators of each arm; ``covariate_*``: the
    covariate's per-unit numerators and denominators, the same units in the same order."""
    nc, dc, nt, dt = _arrays(*metric_c, *metric_t)
    xnc, xdc, xnt, xdt = _arrays(*covariate_c, *covariate_t)
    if not (nc.size == dc.size == xnc.size == xdc.size and nt.size == dt.size == xnt.size):
        raise ValueError("the metric and the covariate need one value per unit of each arm")
    if xdt.size != nt.size or nc.size < 2 or nt.size < 2:
        raise ValueError("each arm needs >= 2 units, with the covariate for each")
    if min(dc.sum(), dt.sum(), xdc.sum(), xdt.sum()) <= 0:
        raise ValueError("denominators must have a positive sum in each arm")
    rc, psi_c = _linearised(nc, dc)
    rt, psi_t = _linearised(nt, dt)
    xc, phi_c = _linearised(xnc, xdc)
    xt, phi_t = _linearised(xnt, xdt)
    psi, phi = np.concatenate([psi_c, psi_t]), np.concatenate([phi_c, phi_t])
    var_phi = float(phi.var(ddof=1))
    theta = float(np.cov(psi, phi, ddof=1)[0, 1] / var_phi) if var_phi > 0 else 0.0
    pooled = float((xnc.sum() + xnt.sum()) / (xdc.sum() + xdt.sum()))
    est = []
    plain = adjusted = 0.0
    for r, x, ps, ph in ((rc, xc, psi_c, phi_c), (rt, xt, psi_t, phi_t)):
        n = ps.size
        est.append((r - theta * (x - pooled), float((ps - theta * ph).var(ddof=1)) / n, n))
        plain += float(ps.var(ddof=1)) / n
        adjusted += est[-1][1]
    comparison = compare_estimates(
        est[0], est[1], alpha=alpha, metric=metric, higher_is_better=higher_is_better
    )
    ratio = adjusted / plain if plain > 0 else 1.0
    return CupedComparison(replace(comparison, test="CUPED delta-method z-test"), theta, ratio)
