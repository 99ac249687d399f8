"""Uncertainty of metric means: seeded bootstrap confidence intervals and paired significance tests."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(
    values: np.ndarray, *, n_resamples: int = 1000, seed: int = 13, alpha: float = 0.05
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (Efron & Tibshirani 1993)."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(n_resamples, len(values)))].mean(axis=1)
    return float(np.quantile(means, alpha / 2)), float(np.quantile(means, 1 - alpha / 2))


def paired_test(
    a: np.ndarray, b: np.ndarray, *, n_resamples: int = 10000, seed: int = 13
) -> dict[str, float]:
    """Difference of means b - a over the same requests, its bootstrap 95% interval, and the two-sided
    p-value of a paired randomisation (sign-flip) test (Smucker, Allan & Carterette 2007)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    diff = b - a
    if len(diff) == 0:
        return {
            "diff": float("nan"),
            "ci_low": float("nan"),
            "ci_high": float("nan"),
            "p_value": float("nan"),
        }
    observed = diff.mean()
    rng = np.random.default_rng(seed)
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_resamples, len(diff)))
    permuted = np.abs((signs * diff).mean(axis=1))
    p = (1 + np.sum(permuted >= abs(observed) - 1e-12)) / (n_resamples + 1)
    low, high = bootstrap_ci(diff, n_resamples=min(n_resamples, 2000), seed=seed)
    return {"diff": float(observed), "ci_low": low, "ci_high": high, "p_value": float(p)}
