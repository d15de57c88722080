"""The paper's minimal model (experiments/minimal_model): shapes, softmax, seeds, one behaviour."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from experiments.minimal_model.data import (
    CONTEXT_SAMPLERS, SmoothTarget, TaskSpec, make_batch, sample_at_cosine, sample_sphere)
from experiments.minimal_model.model import FixedErrorEstimator, MinimalModel, MLPEstimator
from experiments.minimal_model.run import main as run_main
from experiments.minimal_model.train import TrainConfig, evaluate, make_test_sets, to_tensors, train

SPEC = TaskSpec(dim=6, k=4, n_cosines=4)


@pytest.fixture()
def target() -> SmoothTarget:
    return SmoothTarget(SPEC.dim, SPEC.n_cosines, SPEC.frequency, seed=0)


def _model(target, eoc="zero", mlp=False) -> MinimalModel:
    estimator = (MLPEstimator(SPEC.dim, 8, seed=1) if mlp
                 else FixedErrorEstimator(target, SPEC.fhat_error, seed=2))
    return MinimalModel(estimator, eoc=eoc, w=1.5, b=-0.5, c=0.3)


@pytest.mark.parametrize("eoc", ["zero", "context_mean"])
@pytest.mark.parametrize("mlp", [False, True])
def test_forward_shapes_and_weights_form_a_distribution(target, eoc, mlp):
    batch = make_batch(np.random.default_rng(0), "contrastive", 7, target, SPEC)
    x, _, ctx_x, ctx_y = to_tensors(batch)
    prediction, weights = _model(target, eoc, mlp)(x, ctx_x, ctx_y)
    assert prediction.shape == (7,)
    assert weights.shape == (7, SPEC.k + 2)
    assert torch.all(weights >= 0)
    torch.testing.assert_close(weights.sum(dim=1), torch.ones(7, dtype=weights.dtype))


def test_prediction_is_the_weighted_sum_of_slot_values(target):
    batch = make_batch(np.random.default_rng(1), "random", 5, target, SPEC)
    x, _, ctx_x, ctx_y = to_tensors(batch)
    model = _model(target)
    prediction, weights = model(x, ctx_x, ctx_y)
    f_hat = model.in_weights(x)
    expected = (weights[:, :SPEC.k] * ctx_y).sum(1) + weights[:, -1] * f_hat  # end-of-context value 0
    torch.testing.assert_close(prediction, expected)


def test_regimes_place_close_examples_where_they_should(target):
    rng = np.random.default_rng(3)
    x = sample_sphere(rng, 200, SPEC.dim)
    low, high = SPEC.near_cos
    similar = np.einsum("nd,nkd->nk", x, CONTEXT_SAMPLERS["similar"](rng, x, SPEC))
    assert np.all((similar >= low - 1e-9) & (similar <= high + 1e-9))
    one_near = np.einsum("nd,nkd->nk", x, CONTEXT_SAMPLERS["one_near"](rng, x, SPEC))
    close_per_context = (one_near >= low - 1e-9).sum(axis=1)
    assert np.all(close_per_context >= 1) and close_per_context.mean() < 1.05  # a random one rarely is
    points = sample_at_cosine(rng, x, np.full(200, 0.9))
    np.testing.assert_allclose(np.linalg.norm(points, axis=1), 1.0)
    np.testing.assert_allclose((points * x).sum(axis=1), 0.9)


def test_fixed_estimator_has_the_error_it_is_given(target):
    x = sample_sphere(np.random.default_rng(4), 20_000, SPEC.dim)
    f_hat = FixedErrorEstimator(target, 0.5, seed=5)(torch.from_numpy(x)).numpy()
    assert np.mean((f_hat - target(x)) ** 2) == pytest.approx(0.25, rel=0.1)


def test_same_seed_same_batches_and_training(target):
    a = make_batch(np.random.default_rng(9), "random_similar", 16, target, SPEC)
    b = make_batch(np.random.default_rng(9), "random_similar", 16, target, SPEC)
    np.testing.assert_array_equal(a.ctx_x, b.ctx_x)
    np.testing.assert_array_equal(a.ctx_y, b.ctx_y)
    cfg = TrainConfig(steps=20, batch_size=32, record_every=5)
    runs = [train(_model(target, mlp=True), "contrastive", target, SPEC, cfg, seed=3) for _ in range(2)]
    assert runs[0] == runs[1]
    assert len(runs[0]["w"]) == 5


def test_unknown_regime_is_refused(target):
    with pytest.raises(ValueError, match="unknown context regime"):
        make_batch(np.random.default_rng(0), "nearest", 4, target, SPEC)


def test_random_training_leans_on_context_less_than_one_near_training(target):
    """The paper's case 1 vs case 3, on a very small run: with one close example in the test
    context, the random-trained gate gives the context less weight than the one-near-trained one."""
    cfg = TrainConfig(steps=150, batch_size=64)
    tests = make_test_sets(target, SPEC, 500, seed=7)
    weight = {}
    for regime in ("random", "one_near"):
        model = MinimalModel(FixedErrorEstimator(target, SPEC.fhat_error, seed=2))
        train(model, regime, target, SPEC, cfg, seed=11)
        weight[regime] = evaluate(model, tests)["one_near"]["context_weight"]
    assert weight["random"] < weight["one_near"] - 0.1


def test_command_line_writes_tables_results_and_figures(tmp_path):
    run_main(["--seeds", "2", "--steps", "4", "--mlp-steps", "4", "--out", str(tmp_path / "out"),
              "--figures", str(tmp_path / "fig")])
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["seeds"] == [0, 1]
    assert set(results["results"]) == {"fixed", "mlp", "eoc_mean"}
    tables = (tmp_path / "out" / "tables.md").read_text()
    assert "| contrastive (random+one-near) |" in tables and "In-weights error" in tables
    assert sorted(p.name for p in (tmp_path / "fig").iterdir()) == [
        "trajectories_eoc_mean.png", "trajectories_fixed.png", "trajectories_mlp.png"]
