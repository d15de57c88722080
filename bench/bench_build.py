"""Full `pipeline build` at the paper's scale: cold time per stage, warm rebuild, peak RSS.

    python bench/bench_build.py --n 50000

Generates an English-like MT corpus (words from the MiniLM vocabulary, Zipf-distributed,
8-30 words a sentence; targets are a reversible letter substitution), writes it as TSV files, and
runs `pipeline build --task en-lt --paraphraser none` twice in subprocesses: cold (empty cache)
and warm (everything cached). Targets: warm <= 5% of cold, peak RSS <= 4 GiB.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


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


def run_build(args: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipeline.cli", "build", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"build failed:\n{proc.stderr[-3000:]}")
    return time.perf_counter() - started, proc.stdout.strip().splitlines()[-1]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=50_000)
    parser.add_argument("--tests", type=int, default=1012)
    parser.add_argument("--ood", type=int, default=500)
    parser.add_argument("--work", help="folder for data and outputs (default: a temp folder)")
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
    cold, folder = run_build(common)
    peak_gib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**20
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    warm, _ = run_build(common)
    print(f"pool {args.n}, tests {args.tests} + {args.ood}; version folder {folder}")
    for name, stage in manifest["stages"].items():
        print(f"  {name:<11} {stage['seconds']:>8.1f} s   rows in {stage['rows_in']:>7}  out {stage['rows_out']:>7}")
    print(f"cold build (wall, incl. start-up and writing): {cold:.1f} s")
    print(f"warm rebuild (everything cached):               {warm:.1f} s = {100 * warm / cold:.1f}% of cold")
    print(f"peak RSS of the cold build: {peak_gib:.2f} GiB")


if __name__ == "__main__":
    main()
