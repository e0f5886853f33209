"""Paired bootstrap confidence intervals over users (or pairs)."""

from __future__ import annotations

from typing import Callable

import numpy as np


def _interval(diffs: np.ndarray, level: float) -> tuple[float, float]:
    lo, hi = np.quantile(diffs, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, *, n_resamples: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict[str, float]:
    """Mean of ``b - a`` over paired units with a percentile bootstrap interval.

    ``a`` and ``b`` hold one value per unit (user), in the same order.
    """
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"paired samples differ in shape: {a.shape} vs {b.shape}")
    diff = b - a
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(diff), size=(n_resamples, len(diff)))
    lo, hi = _interval(diff[idx].mean(1), level)
    return {"mean_diff": float(diff.mean()), "ci_low": lo, "ci_high": hi,
            "n": int(len(diff)), "resamples": n_resamples}


def paired_bootstrap_corpus(stats_a: np.ndarray, stats_b: np.ndarray, score: Callable[[np.ndarray], float], *,
                            n_resamples: int = 2000, seed: int = 0, level: float = 0.95) -> dict[str, float]:
    """``score(b) - score(a)`` for a corpus-level metric (e.g. BLEU) that is a function of summed
    per-unit statistics ``(n, k)``: each resample sums the same units' rows of both systems."""
    if stats_a.shape != stats_b.shape:
        raise ValueError(f"paired statistics differ in shape: {stats_a.shape} vs {stats_b.shape}")
    rng = np.random.default_rng(seed)
    n = len(stats_a)
    diffs = np.empty(n_resamples)
    for r in range(n_resamples):
        idx = rng.integers(0, n, size=n)
        diffs[r] = score(stats_b[idx].sum(0)) - score(stats_a[idx].sum(0))
    lo, hi = _interval(diffs, level)
    return {"mean_diff": float(score(stats_b.sum(0)) - score(stats_a.sum(0))), "ci_low": lo, "ci_high": hi,
            "n": int(n), "resamples": n_resamples}


def bootstrap_mean(values: np.ndarray, *, n_resamples: int = 2000, seed: int = 0,
                   level: float = 0.95) -> dict[str, float]:
    """Mean of per-unit values (e.g. each test user's NDCG) with a percentile bootstrap interval."""
    values = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_resamples, len(values)))
    lo, hi = _interval(values[idx].mean(1), level)
    return {"mean": float(values.mean()), "ci_low": lo, "ci_high": hi, "n": int(len(values)),
            "resamples": n_resamples}
