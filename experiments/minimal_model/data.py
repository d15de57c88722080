"""Inputs on the unit sphere, a fixed smooth target, and the five context regimes.

Everything here is numpy with an explicit generator, so a seed fixes the target, the test sets and
every training batch.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TRAIN_REGIMES = ("random", "similar", "one_near", "random_similar", "contrastive")
TEST_REGIMES = ("random", "similar", "one_near")


@dataclass(frozen=True)
class TaskSpec:
    """The knobs of the simulated task; the defaults satisfy the paper's assumption (A):
    copying a near label beats f_hat, and f_hat beats using a random label."""

    dim: int = 8                       # inputs live on the unit sphere of R^dim
    k: int = 4                         # examples per context
    n_cosines: int = 16                # target = standardised sum of this many cosines
    frequency: float = 4.0             # of each cosine: sets the Lipschitz constant
    near_cos: tuple[float, float] = (0.95, 0.995)  # a "close" example's cosine to the query, uniform
    label_noise: float = 0.1           # std of Gaussian noise on every observed label
    fhat_error: float = 0.55           # RMS error of the fixed in-weights estimate f_hat = f + error


class SmoothTarget:
    """f(x) = (sum_j cos(freq * <u_j, x> + phase_j) - mean) / std: bounded and Lipschitz.

    The standardisation (mean 0, variance 1 over the sphere) makes errors comparable across seeds.
    """

    def __init__(self, dim: int, n_cosines: int, frequency: float, seed: int):
        rng = np.random.default_rng(seed)
        self.directions = sample_sphere(rng, n_cosines, dim)
        self.phases = rng.uniform(0.0, 2 * np.pi, n_cosines)
        self.frequency = frequency
        raw = self._raw(sample_sphere(rng, 20_000, dim))
        self.mean, self.std = float(raw.mean()), float(raw.std())

    def _raw(self, x: np.ndarray) -> np.ndarray:
        return np.cos(self.frequency * x @ self.directions.T + self.phases).sum(axis=-1)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (self._raw(x) - self.mean) / self.std


@dataclass
class Batch:
    """Queries x (n, d) with clean targets f(x) and noisy labels y, and contexts (n, k, d) / (n, k)."""

    x: np.ndarray
    f_x: np.ndarray
    y: np.ndarray
    ctx_x: np.ndarray
    ctx_y: np.ndarray


def sample_sphere(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    z = rng.standard_normal((n, dim))
    return z / np.linalg.norm(z, axis=-1, keepdims=True)


def sample_at_cosine(rng: np.random.Generator, x: np.ndarray, cos: np.ndarray) -> np.ndarray:
    """Unit vectors whose cosine to each row of x is exactly `cos` (direction otherwise uniform)."""
    u = rng.standard_normal(x.shape)
    u -= (u * x).sum(axis=-1, keepdims=True) * x
    u /= np.linalg.norm(u, axis=-1, keepdims=True)
    return cos[..., None] * x + np.sqrt(1.0 - cos[..., None] ** 2) * u


def _random_contexts(rng, x, spec):
    return sample_sphere(rng, len(x) * spec.k, spec.dim).reshape(len(x), spec.k, spec.dim)


def _similar_contexts(rng, x, spec):
    rows = np.repeat(x[:, None, :], spec.k, axis=1)
    cos = rng.uniform(*spec.near_cos, size=rows.shape[:2])
    return sample_at_cosine(rng, rows, cos)


def _one_near_contexts(rng, x, spec):
    """k-1 random examples and one close one, at a uniformly random position."""
    ctx = _random_contexts(rng, x, spec)
    near = sample_at_cosine(rng, x, rng.uniform(*spec.near_cos, size=len(x)))
    slot = rng.integers(0, spec.k, size=len(x))
    ctx[np.arange(len(x)), slot] = near
    return ctx


def _mixed(first, second):
    """Each context is drawn from `first` or `second` with probability 1/2."""
    def sample(rng, x, spec):
        a, b = first(rng, x, spec), second(rng, x, spec)
        pick_b = rng.random(len(x)) < 0.5
        return np.where(pick_b[:, None, None], b, a)
    return sample


CONTEXT_SAMPLERS = {
    "random": _random_contexts,
    "similar": _similar_contexts,
    "one_near": _one_near_contexts,
    "random_similar": _mixed(_random_contexts, _similar_contexts),
    "contrastive": _mixed(_random_contexts, _one_near_contexts),
}


def make_batch(rng: np.random.Generator, regime: str, n: int, target: SmoothTarget,
               spec: TaskSpec) -> Batch:
    """n fresh queries with contexts drawn under `regime`; labels carry `spec.label_noise`."""
    if regime not in CONTEXT_SAMPLERS:
        raise ValueError(f"unknown context regime {regime!r}; choose one of {sorted(CONTEXT_SAMPLERS)}")
    x = sample_sphere(rng, n, spec.dim)
    ctx_x = CONTEXT_SAMPLERS[regime](rng, x, spec)
    f_x = target(x)
    noise = spec.label_noise
    y = f_x + noise * rng.standard_normal(n)
    ctx_y = target(ctx_x) + noise * rng.standard_normal((n, spec.k))
    return Batch(x=x, f_x=f_x, y=y, ctx_x=ctx_x, ctx_y=ctx_y)
