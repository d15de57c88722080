"""Training under one context regime and evaluation under the test regimes.

Training draws a fresh batch every step (population loss, no fixed training set), so what the
gate learns reflects the regime, not memorisation.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .data import TEST_REGIMES, Batch, SmoothTarget, TaskSpec, make_batch, sample_sphere
from .model import MinimalModel


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1200
    batch_size: int = 128
    gate_lr: float = 0.05        # Adam on w, b, c
    in_weights_lr: float = 3e-4  # Adam on the MLP f_hat: small on purpose, a limited budget (paper (A))
    record_every: int = 25


def to_tensors(batch: Batch) -> tuple[torch.Tensor, ...]:
    return tuple(torch.from_numpy(a) for a in (batch.x, batch.y, batch.ctx_x, batch.ctx_y))


def in_weights_mse(model: MinimalModel, probe_x: np.ndarray, target: SmoothTarget) -> float:
    """Population MSE of f_hat alone, on fixed probe inputs."""
    with torch.no_grad():
        f_hat = model.in_weights(torch.from_numpy(probe_x)).numpy()
    return float(np.mean((f_hat - target(probe_x)) ** 2))


def _optimizer(model: MinimalModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    groups = [{"params": model.gate_parameters(), "lr": cfg.gate_lr}]
    mlp_params = [p for p in model.in_weights.parameters() if p.requires_grad]
    if mlp_params:
        groups.append({"params": mlp_params, "lr": cfg.in_weights_lr})
    return torch.optim.Adam(groups)


def train(model: MinimalModel, regime: str, target: SmoothTarget, spec: TaskSpec,
          cfg: TrainConfig, seed: int) -> dict[str, list[float]]:
    """Trains `model` in place on squared loss; returns the trajectory of w, b, c and f_hat's MSE."""
    rng = np.random.default_rng(seed)
    probe_x = sample_sphere(np.random.default_rng([seed, 1]), 2000, spec.dim)
    optimizer = _optimizer(model, cfg)
    trajectory: dict[str, list[float]] = {key: [] for key in ("step", "w", "b", "c", "fhat_mse")}
    for step in range(cfg.steps + 1):
        if step % cfg.record_every == 0 or step == cfg.steps:
            _record(trajectory, step, model, probe_x, target)
        if step == cfg.steps:
            break
        x, y, ctx_x, ctx_y = to_tensors(make_batch(rng, regime, cfg.batch_size, target, spec))
        prediction, _ = model(x, ctx_x, ctx_y)
        loss = torch.mean((prediction - y) ** 2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return trajectory


def _record(trajectory, step, model, probe_x, target) -> None:
    trajectory["step"].append(step)
    for name in ("w", "b", "c"):
        trajectory[name].append(float(getattr(model, name).detach()))
    trajectory["fhat_mse"].append(in_weights_mse(model, probe_x, target))


def make_test_sets(target: SmoothTarget, spec: TaskSpec, n: int, seed: int) -> dict[str, Batch]:
    """One fixed test set per test regime, shared by every trained model of a seed."""
    return {regime: make_batch(np.random.default_rng([seed, 2, i]), regime, n, target, spec)
            for i, regime in enumerate(TEST_REGIMES)}


def evaluate(model: MinimalModel, test_sets: dict[str, Batch]) -> dict[str, dict[str, float]]:
    """Test MSE against the clean f(x), and where the gate puts its weight, per test regime.

    `top_context` is the weight on the context example most similar to the query: near 1 means
    the model copies that label (right under one-near, blind copying under random).
    """
    results = {}
    with torch.no_grad():
        for regime, batch in test_sets.items():
            x, _, ctx_x, ctx_y = to_tensors(batch)
            prediction, weights = model(x, ctx_x, ctx_y)
            k = ctx_y.shape[1]
            closest = torch.einsum("nd,nkd->nk", x, ctx_x).argmax(dim=1)
            results[regime] = {
                "mse": float(torch.mean((prediction - torch.from_numpy(batch.f_x)) ** 2)),
                "context_weight": float(weights[:, :k].sum(dim=1).mean()),
                "top_context": float(weights[torch.arange(len(x)), closest].mean()),
                "eoc_weight": float(weights[:, k].mean()),
                "self_weight": float(weights[:, k + 1].mean()),
            }
    return results


def reference_mses(test_sets: dict[str, Batch], f_hat_values: dict[str, np.ndarray],
                   spec: TaskSpec) -> dict[str, dict[str, float]]:
    """MSE of fixed strategies, as yardsticks: f_hat only, copy the closest label, average the
    context labels, and a hard switch (copy the closest label if its cosine reaches the near
    band, else f_hat)."""
    table: dict[str, dict[str, float]] = {}
    for regime, batch in test_sets.items():
        cos = np.einsum("nd,nkd->nk", batch.x, batch.ctx_x)
        closest = batch.ctx_y[np.arange(len(cos)), cos.argmax(axis=1)]
        is_near = cos.max(axis=1) >= spec.near_cos[0]
        strategies = {
            "f_hat only": f_hat_values[regime],
            "copy closest": closest,
            "context average": batch.ctx_y.mean(axis=1),
            "hard switch": np.where(is_near, closest, f_hat_values[regime]),
        }
        for name, pred in strategies.items():
            table.setdefault(name, {})[regime] = float(np.mean((pred - batch.f_x) ** 2))
    return table
