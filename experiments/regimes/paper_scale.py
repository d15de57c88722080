"""The whole regime comparison at the paper's scale, as one command for a GPU machine.

    python -m experiments.regimes.paper_scale --model /models/Llama-3.2-1B-Instruct
    python -m experiments.regimes.paper_scale --model M --dry-run      # the commands and the plan

What it runs, each step through `experiments.regimes.run` (so it resumes per (regime, seed) and
every number can be regenerated one command at a time):
1. the comparison: base, zero, random, similar, contrastive and the appendix D.3 mixture
   (random + similar contexts only), seeds 0-2, on `align-synth` with a 50k pool;
2. the mix ablation (eps = 0, p = 0) and the eps / p sensitivity at 0.1, 0.3 and 0.5, contrastive
   adapters only, on builds that differ from the main one in the context weights alone;
3. the summary tables, verdicts and figures of each.

Training follows the paper's synthetic-task recipe: 200 training instances for 5 epochs (batch 8,
LoRA on q/k/v at lr 2e-4, the trainer's defaults); evaluation on every test item, probes on 100
items every 25 steps. The expected wall time printed by `--dry-run` is an estimate from
throughputs measured on one H200 (see experiments/REPORT.md, section 4), not a measured run.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from . import TASK
from .ablation import main as ablation_main
from .run import main as run_main

SEEDS = ("0", "1", "2")
# contrastive-only builds: name -> context-weight flags (the default mix is p = 0.2, eps = 0.1)
VARIANTS = {
    "eps0": ("--eps=0",), "p0": ("--p=0",),
    "eps0.3": ("--eps=0.3",), "eps0.5": ("--eps=0.5",),
    "p0.1": ("--p=0.1",), "p0.3": ("--p=0.3",),
    "p0.5": ("--p=0.5", "--eps=0"),  # p = 0.5 leaves no weight for near and paraphrase examples
}


@dataclass(frozen=True)
class Scale:
    """The paper's synthetic-task scale; every figure here goes into each run's command line."""
    pool_size: int = 50_000
    probe_size: int = 100
    train_rows: int = 200
    epochs: int = 5
    batch_size: int = 8
    probe_every: int = 25
    eval_limit: int = 100_000  # every test item

    def run_args(self, model: str, jobs: int) -> list[str]:
        return ["--task", TASK, "--model", model, "--jobs", str(jobs), "--steps", "-1",
                "--pool-size", str(self.pool_size), "--probe-size", str(self.probe_size),
                "--test-size", "300", "--ood-size", "200",
                "--probe-every", str(self.probe_every), "--probe-limit", str(self.probe_size),
                "--eval-limit", str(self.eval_limit),
                f"--train-arg=--train-limit={self.train_rows}", f"--train-arg=--epochs={self.epochs}",
                f"--train-arg=--batch-size={self.batch_size}", "--train-arg=--device=cuda"]


def plan(scale: Scale, model: str, jobs: int) -> list[tuple[str, list[str]]]:
    """(what, argv of experiments.regimes.run) for every step, in the order they run."""
    common = scale.run_args(model, jobs)
    steps = [("comparison", [*common, "--name", "paper", "--seeds", *SEEDS])]
    for name, flags in VARIANTS.items():
        steps.append((f"contrastive on the {name} build",
                      [*common, "--name", f"paper-{name}", "--seeds", *SEEDS, "--models", "contrastive",
                       *(f"--build-arg={flag}" for flag in flags)]))
    return steps


def expected_hours(scale: Scale, jobs: int) -> float:
    """Rough wall time: per trained run, training at ~2.5k tokens/s (batch-size padding, short
    rows), 8 probe passes and one full evaluation at ~40 generated rows/s; plus one build per
    variant. The 16 CPU cores and 139 GiB of the H200 machine fit `jobs` runs side by side."""
    runs = 6 * len(SEEDS) + len(VARIANTS) * len(SEEDS)
    rows = scale.train_rows * scale.epochs
    train_s = rows * 160 / 2_500  # ~160 tokens per row with a 4-example context
    probe_passes = rows // scale.batch_size // scale.probe_every + 1
    probe_s = probe_passes * scale.probe_size * 2 * 4 / 40  # 2 test sets x 4 generations per item
    eval_s = (300 + 200) * 4 / 40
    build_s = (1 + len(VARIANTS)) * 120
    return (runs * (train_s + probe_s + eval_s) / jobs + build_s) / 3600


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a local ~1B causal LM folder (e.g. Llama-3.2-1B)")
    parser.add_argument("--jobs", type=int, default=4, help="runs side by side on the GPU")
    parser.add_argument("--dry-run", action="store_true", help="print the plan and commands only")
    args = parser.parse_args(argv)
    scale = Scale()
    print(f"expected wall time: about {expected_hours(scale, args.jobs):.1f} h with --jobs {args.jobs} "
          "(an estimate, see the module docstring)", flush=True)
    for what, run_argv in plan(scale, args.model, args.jobs):
        print(f"== {what}", flush=True)
        run_main([*run_argv, *(["--dry-run"] if args.dry_run else [])])
    if not args.dry_run:
        names = ["paper", *(f"paper-{name}" for name in VARIANTS)]
        ablation_main(["--names", *names, "--output", "ablation_paper", "--task", TASK])
    return 0


if __name__ == "__main__":
    sys.exit(main())
