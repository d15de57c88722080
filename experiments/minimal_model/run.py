"""Command line: the whole minimal-model study in one command.

    python -m experiments.minimal_model.run --seeds 3 --seed 0

Writes results.json and tables.md under --out and the trajectory figures under --figures, and
prints the tables and the wall time.
"""
from __future__ import annotations

import argparse
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

import torch

from stages.base import write_json_atomically

from .experiments import VARIANTS, SweepConfig, run_seed
from .report import (fhat_table, gate_table, mse_table, paired_gap_table, plot_trajectories,
                     weight_table)
from .train import TrainConfig

HERE = Path(__file__).resolve().parent
TITLES = {"fixed": "fixed f_hat (MSE 0.30), end-of-context value 0",
          "mlp": "f_hat = MLP trained jointly, end-of-context value 0",
          "eoc_mean": "fixed f_hat, end-of-context slot = context-label mean"}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (>= 1)")
    parser.add_argument("--seed", type=int, default=0, help="first seed; seeds are seed..seed+seeds-1")
    parser.add_argument("--steps", type=int, default=1200, help="training steps, fixed-f_hat variants")
    parser.add_argument("--mlp-steps", type=int, default=2000, help="training steps, MLP variant")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--figures", type=Path, default=HERE / "figures")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; the tensors are tiny, so 1 is fastest on a busy machine")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.steps < 1 or args.mlp_steps < 1:
        parser.error("--seeds, --steps and --mlp-steps must be at least 1")
    return args


def tables_markdown(results: dict) -> str:
    parts = []
    for variant, runs in results.items():
        parts += [f"### {variant}: {TITLES[variant]}", "", "Test MSE vs the clean f(x):", "",
                  mse_table(runs), "", "Contrastive minus each other regime, paired by seed:", "",
                  paired_gap_table(runs), "", "Learned gate:", "", gate_table(runs), "",
                  "Test-time weight: all context / most similar example / end-of-context / f_hat:", "",
                  weight_table(runs), ""]
        if variant == "mlp":
            parts += ["In-weights error after training:", "", fhat_table(runs), ""]
    return "\n".join(parts)


def main(argv=None) -> dict:
    args = parse_args(argv)
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(previous_threads)


def _run(args: argparse.Namespace) -> dict:
    cfg = SweepConfig(train=replace(TrainConfig(), steps=args.steps), mlp_steps=args.mlp_steps)
    seeds = list(range(args.seed, args.seed + args.seeds))
    started = time.perf_counter()
    results = {}
    for variant in args.variants:
        results[variant] = [run_seed(variant, seed, cfg) for seed in seeds]
        print(f"{variant}: done at {time.perf_counter() - started:.0f}s", flush=True)
        plot_trajectories(results[variant], args.figures / f"trajectories_{variant}.png",
                          TITLES[variant])
    wall = time.perf_counter() - started
    tables = tables_markdown(results)
    _write(args.out / "tables.md", tables + f"\nWall time: {wall:.0f} s, seeds {seeds}.\n")
    write_json_atomically(args.out / "results.json",
                          {"seeds": seeds, "config": asdict(cfg), "wall_seconds": round(wall, 1),
                           "results": _rounded(results)})
    print(tables)
    print(f"wall time: {wall:.0f} s")
    return results


def _rounded(value):
    """Floats to 5 significant digits: the JSON stays small enough to keep in the repository."""
    if isinstance(value, float):
        return float(f"{value:.5g}")
    if isinstance(value, dict):
        return {key: _rounded(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_rounded(item) for item in value]
    return value


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
