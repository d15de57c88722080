"""Full `pipeline build` at the paper's scale: cold time per stage, warm rebuild, peak RSS.

    python bench/bench_build.py --n 50000 --agreement

Generates an English-like MT corpus (words from the MiniLM vocabulary, Zipf-distributed,
8-30 words a sentence; targets are a reversible letter substitution), writes it as TSV files, and
runs `pipeline build --task en-lt --paraphraser none` twice in subprocesses: cold (empty cache)
and warm (everything cached). Targets: cold <= 300 s on 2 CPU cores, warm <= 5% of cold, peak RSS
<= 4 GiB. `--agreement` then runs bench/bench_agreement.py on the cold build's version.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's code, not an installed copy


def english_words() -> list[str]:
    from stages.embed.models import default_model_path

    vocab = (default_model_path() / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return [w for w in vocab if w.isalpha() and w.isascii() and len(w) > 1]


def sentences(n: int, seed: int) -> list[str]:
    words = english_words()
    rng = np.random.default_rng(seed)
    ranks = np.arange(1, len(words) + 1, dtype=np.float64)
    probs = 1.0 / ranks ** 1.05
    probs /= probs.sum()
    order = rng.permutation(len(words))
    lengths = rng.integers(8, 31, size=n)
    picks = rng.choice(len(words), size=int(lengths.sum()), p=probs)
    out, at = [], 0
    for length in lengths:
        out.append(" ".join(words[order[j]] for j in picks[at:at + length]).capitalize() + ".")
        at += length
    return out


def write_tsv(path: Path, rows: list[str]) -> None:
    table = str.maketrans("abcdefghijklmnopqrstuvwxyz", "qwertyuiopasdfghjklzxcvbnm")
    path.write_text("source\ttarget\n" + "".join(f"{s}\t{s.translate(table)}\n" for s in rows), encoding="utf-8")


def run_build(args: list[str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the build process, version folder)."""
    started, cpu_before = time.perf_counter(), _children_cpu()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "build", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"build failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started, _children_cpu() - cpu_before, proc.stdout.strip().splitlines()[-1]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--tests", type=int, default=1012)
    parser.add_argument("--ood", type=int, default=500)
    parser.add_argument("--work", help="folder for data and outputs (default: a temp folder)")
    parser.add_argument("--build-option", action="append", default=[],
                        help="extra `pipeline build` argument, repeatable (e.g. --build-option=--exact-embeddings)")
    parser.add_argument("--agreement", action="store_true",
                        help="then compare the build's max_sim bins and near rankings with fp32 (bench_agreement.py)")
    args = parser.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="ictrain-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    texts = sentences(args.n + args.tests + args.ood, seed=0)
    write_tsv(work / "train.tsv", texts[:args.n])
    write_tsv(work / "test.tsv", texts[args.n:args.n + args.tests])
    write_tsv(work / "ood.tsv", texts[args.n + args.tests:])
    common = ["--task", "en-lt", "--train", str(work / "train.tsv"), "--test", str(work / "test.tsv"),
              "--test-ood", str(work / "ood.tsv"), "--paraphraser", "none", "--out", str(work / "out"),
              "--pool-size", str(args.n), "--no-progress"]
    load_before = os.getloadavg()
    cold, cold_cpu, folder = run_build(common + list(args.build_option))
    load_after = os.getloadavg()
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    warm, _, _ = run_build(common + list(args.build_option))
    print(f"pool {args.n}, tests {args.tests} + {args.ood}; version folder {folder}")
    for name, stage in manifest["stages"].items():
        print(f"  {name:<11} {stage['seconds']:>8.1f} s   rows in {stage['rows_in']:>7}  out {stage['rows_out']:>7}")
    print(f"cold build (wall, incl. start-up and writing): {cold:.1f} s, {cold_cpu:.1f} s of CPU; load average "
          f"(1/5/15 min) {'/'.join(f'{x:.1f}' for x in load_before)} before, "
          f"{'/'.join(f'{x:.1f}' for x in load_after)} after")
    print(f"warm rebuild (everything cached):               {warm:.1f} s = {100 * warm / cold:.1f}% of cold")
    print(f"peak RSS of the cold build: {peak_gib:.2f} GiB")
    if args.agreement:
        from bench_agreement import main as agreement

        agreement(["--version", folder, "--cache-dir", str(work / "out" / ".cache" / "embeddings")])


if __name__ == "__main__":
    main()
