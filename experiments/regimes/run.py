"""Command line: build a synthetic task, fine-tune every regime per seed, evaluate, aggregate, plot.

    python -m experiments.regimes.run --seeds 0 1 2                          # align-synth (C.4)
    python -m experiments.regimes.run --seeds 0 1 2 --task align-synth-v1    # the committed first round

Every step is a call of the project's own commands (`pipeline build`, `trainer/sft.py`,
`trainer/evaluate.py`), printed before it runs and logged under `<work>/logs/`, so each number in
the report can be regenerated one command at a time. A step whose output already exists is
skipped, so an interrupted run resumes where it stopped. At most `--jobs` steps run at once,
each on one torch thread, because the machines this was written for have two shared cores.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from schemas.errors import UserError

from . import TASK
from .aggregate import MODELS, REGIMES
from .summary import write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds")
    parser.add_argument("--model", default="models/smollm2-135m", help="converted SmolLM2 folder")
    parser.add_argument("--work", type=Path, default=Path("runs/regimes"),
                        help="datasets, adapters, reports and logs (git-ignored)")
    parser.add_argument("--task", default=TASK, help="synthetic task to build (default %(default)s)")
    parser.add_argument("--name", default="default", help="name of this build in results")
    parser.add_argument("--steps", type=int, default=40, help="optimizer steps, every regime")
    parser.add_argument("--probe-every", type=int, default=10)
    parser.add_argument("--probe-limit", type=int, default=5, help="probe items per test set")
    parser.add_argument("--eval-limit", type=int, default=10, help="eval items per test set")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS,
                        help="models to run (the ablation needs only contrastive)")
    parser.add_argument("--final-probes", action="store_true",
                        help="probe the base and each finished adapter once (--probe-limit items) "
                             "instead of during training: two points per curve, far cheaper on a CPU")
    parser.add_argument("--jobs", type=int, default=2, help="steps run at once (1 thread each)")
    parser.add_argument("--build-arg", action="append", default=[],
                        help="extra `pipeline build` flag, e.g. --build-arg=--eps=0")
    parser.add_argument("--train-arg", action="append", default=[],
                        help="extra `trainer/sft.py` flag for every regime, e.g. --train-arg=--learning-rate=1e-3")
    parser.add_argument("--pool-size", type=int, default=600)
    parser.add_argument("--test-size", type=int, default=40, help="in-domain test inputs of the build")
    parser.add_argument("--ood-size", type=int, default=20, help="out-of-domain test inputs of the build")
    parser.add_argument("--probe-size", type=int, default=10, help="probe items of the build")
    parser.add_argument("--results", type=Path, default=HERE / "results")
    parser.add_argument("--figures", type=Path, default=HERE / "figures")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    return parser.parse_args(argv)


def run_step(command: list[str], log: Path, dry_run: bool) -> float:
    """Run one command with its output in `log`; returns its wall time in seconds."""
    print("$ " + shlex.join(command), flush=True)
    if dry_run:
        return 0.0
    log.parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        done = subprocess.run(command, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise UserError(f"{log}: `{shlex.join(command)}` failed (exit {done.returncode}); "
                        "read the log, fix the cause and rerun (finished steps are kept)")
    print(f"  done in {seconds:.0f}s: {log}", flush=True)
    return seconds


# Appendix D.3's mixture: random and similar contexts only (no near example, no paraphrase),
# trained as the contrastive split of a second build that differs from the first in nothing else
MIXTURE_WEIGHTS = ("--w-random", "0.5", "--w-similar", "0.5", "--w-near", "0", "--w-paraphrase", "0")


def build_dataset(args: argparse.Namespace, mixture: bool = False) -> Path:
    """Build (or reuse, the pipeline caches by content) the version; returns its folder."""
    out = args.work / args.name / "mixture-build" if mixture else args.work / args.name
    command = [sys.executable, "-m", "pipeline.cli", "build", "--task", args.task, "--out", str(out), "--seed", "0",
               "--pool-size", str(args.pool_size), "--test-size", str(args.test_size),
               "--ood-size", str(args.ood_size), "--probe-size", str(args.probe_size), "--no-progress",
               *args.build_arg, *(MIXTURE_WEIGHTS if mixture else ())]
    log = f"{args.name}-build{'-mixture' if mixture else ''}.log"
    run_step(command, args.work / "logs" / log, args.dry_run)
    return (out / args.task / "latest").resolve() if not args.dry_run else out


def same_eval_rows(first: Path, second: Path) -> None:
    """The mixture is compared to the other models row by row, so its build must hold the very
    same eval rows (ids, prompts, gold) as the main build."""
    from pipeline.store import load_split

    columns = ("id", "prompt", "completion", "max_sim")
    a, b = load_split(first / "eval"), load_split(second / "eval")
    if any(a[c] != b[c] for c in columns):
        raise UserError(f"{second}: its eval rows differ from {first}'s; the mixture build must "
                        "differ from the main build in the context weights only")


def train_command(args, data: Path, regime: str, seed: int, folder: Path) -> list[str]:
    regime = "contrastive" if regime == "mixture" else regime  # the mixture build's contrastive split
    return [sys.executable, "trainer/sft.py", "--data", str(data), "--regime", regime,
            "--model", args.model, "--output-dir", str(folder), "--max-steps", str(args.steps),
            "--seed", str(seed), "--probe-every", str(args.probe_every),
            "--limit", str(args.probe_limit), "--threads", "1", "--logging-steps", "5", *args.train_arg]


def eval_command(args, data: Path, report: Path, adapter: Path | None) -> list[str]:
    model = ["--adapter", str(adapter)] if adapter else ["--model", args.model]
    return [sys.executable, "trainer/evaluate.py", "--data", str(data), *model,
            "--output", str(report), "--limit", str(args.eval_limit), "--threads", "1"]


def probe_command(args, data: Path, report: Path, adapter: Path | None) -> list[str]:
    model = ["--adapter", str(adapter)] if adapter else ["--model", args.model]
    return [sys.executable, "trainer/probe.py", "--data", str(data), *model, "--output", str(report),
            "--limit", str(args.probe_limit), "--threads", "1"]


def final_probe(args, data: Path, stem: str, adapter: Path | None) -> None:
    report = args.work / args.name / "probe" / f"{stem}.json"
    if args.final_probes and not report.is_file():
        run_step(probe_command(args, data, report, adapter),
                 args.work / "logs" / f"{args.name}-probe-{stem}.log", args.dry_run)


def regime_chain(args, data: Path, regime: str, seed: int) -> None:
    """Train one adapter, then evaluate it; each half is skipped when its output exists."""
    base = args.work / args.name
    folder, report = base / "train" / f"{regime}-s{seed}", base / "eval" / f"{regime}-s{seed}.json"
    logs = args.work / "logs"
    if not (folder / "run_config.json").is_file():
        run_step(train_command(args, data, regime, seed, folder),
                 logs / f"{args.name}-train-{regime}-s{seed}.log", args.dry_run)
    if not report.is_file():
        run_step(eval_command(args, data, report, folder),
                 logs / f"{args.name}-eval-{regime}-s{seed}.log", args.dry_run)
    final_probe(args, data, f"{regime}-s{seed}", folder)


def base_chain(args, data: Path) -> None:
    report = args.work / args.name / "eval" / "base.json"
    if not report.is_file():
        run_step(eval_command(args, data, report, None),
                 args.work / "logs" / f"{args.name}-eval-base.log", args.dry_run)
    final_probe(args, data, "base", None)


def main(argv=None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    data = {"main": build_dataset(args)}
    if "mixture" in args.models:
        data["mixture"] = build_dataset(args, mixture=True)
        if not args.dry_run:
            same_eval_rows(data["main"], data["mixture"])
    chains = [lambda: base_chain(args, data["main"])] if "base" in args.models else []
    chains += [lambda r=regime, s=seed: regime_chain(args, data.get(r, data["main"]), r, s)
               for seed in args.seeds for regime in REGIMES if regime in args.models]
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        for future in [pool.submit(chain) for chain in chains]:
            future.result()
    print(f"all steps done in {time.perf_counter() - started:.0f}s", flush=True)
    if not args.dry_run:
        write_results(args.work / args.name, args.name, args.results, args.figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
