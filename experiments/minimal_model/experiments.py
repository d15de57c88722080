"""One seed's sweep: train a model under every regime, test it under every test regime.

Three variants share the sweep: `fixed` (f_hat = f + controlled error, the stationary-point
check), `mlp` (f_hat a small MLP trained jointly, appendix A.5.4) and `eoc_mean` (fixed f_hat,
end-of-context slot carrying the context-label average; see model.py).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from .data import TRAIN_REGIMES, SmoothTarget, TaskSpec
from .model import FixedErrorEstimator, MinimalModel, MLPEstimator
from .train import TrainConfig, evaluate, in_weights_mse, make_test_sets, reference_mses, train

VARIANTS = ("fixed", "mlp", "eoc_mean")


@dataclass(frozen=True)
class SweepConfig:
    spec: TaskSpec = TaskSpec()
    train: TrainConfig = TrainConfig()
    mlp_steps: int = 2000
    mlp_hidden: int = 32
    test_size: int = 4000
    regimes: tuple[str, ...] = TRAIN_REGIMES


def build_model(variant: str, target: SmoothTarget, cfg: SweepConfig, seed: int) -> MinimalModel:
    """Fresh model; the same seed gives every regime the same f_hat error / MLP initialisation."""
    if variant == "mlp":
        return MinimalModel(MLPEstimator(cfg.spec.dim, cfg.mlp_hidden, seed=seed))
    estimator = FixedErrorEstimator(target, cfg.spec.fhat_error, seed=seed + 10_000)
    return MinimalModel(estimator, eoc="context_mean" if variant == "eoc_mean" else "zero")


def run_seed(variant: str, seed: int, cfg: SweepConfig) -> dict:
    """Everything one seed contributes to the report for one variant."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {VARIANTS}")
    spec = cfg.spec
    target = SmoothTarget(spec.dim, spec.n_cosines, spec.frequency, seed=seed)
    test_sets = make_test_sets(target, spec, cfg.test_size, seed=seed)
    train_cfg = replace(cfg.train, steps=cfg.mlp_steps) if variant == "mlp" else cfg.train
    out: dict = {"regimes": {}}
    for regime in cfg.regimes:
        model = build_model(variant, target, cfg, seed)
        trajectory = train(model, regime, target, spec, train_cfg, seed=seed)
        out["regimes"][regime] = {"trajectory": trajectory, "test": evaluate(model, test_sets)}
    if variant == "fixed":
        estimator = build_model(variant, target, cfg, seed).in_weights
        with torch.no_grad():
            f_hat = {r: estimator(torch.from_numpy(b.x)).numpy() for r, b in test_sets.items()}
        out["references"] = reference_mses(test_sets, f_hat, spec)
    if variant == "mlp":
        untrained = build_model(variant, target, cfg, seed)
        probe = test_sets["random"].x
        out["untrained_fhat_mse"] = in_weights_mse(untrained, probe, target)
        out["predict_zero_mse"] = float(np.mean(target(probe) ** 2))
    return out
