"""Shared fixtures: small real builds of the embedded default task, made once per test session."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

import numpy as np
import pytest

from pipeline.cli import main as pipeline_main

SMALL = ["--pool-size", "1500", "--test-size", "80", "--ood-size", "40", "--probe-size", "20", "--no-progress"]


def run_pipeline(*args: str) -> tuple[int, str, str]:
    """Run the CLI in-process; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = pipeline_main(list(args))
    return code, out.getvalue(), err.getvalue()


def build_small(out: Path, *extra: str) -> Path:
    code, stdout, stderr = run_pipeline("build", "--task", "align-synth", "--out", str(out), *SMALL, *extra)
    assert code == 0, stderr
    return Path(stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def align_synth_version(tmp_path_factory) -> Path:
    """A real `align-synth` version folder (1.5k pool), built once and shared read-only."""
    return build_small(tmp_path_factory.mktemp("build"))


MT_TOPICS = ["the weather", "the train", "my sister", "this book", "the market", "our village",
             "the river", "a new school", "the old bridge", "the doctor"]
MT_VERBS = ["likes", "sees", "visits", "remembers", "describes", "builds"]


def mt_corpus() -> list[tuple[str, str]]:
    """90 (English, Hindi-like) pairs from templates, the same on every call."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(90):
        a, b = rng.choice(MT_TOPICS, 2, replace=False)
        verb = MT_VERBS[i % len(MT_VERBS)]
        rows.append((f"Today {a} {verb} {b} near the station {i % 7}.", f"आज {a} {verb} {b} {i % 7} हिन्दी"))
    return rows


def write_mt_inputs(folder: Path) -> dict[str, Path]:
    """train.tsv (70 pairs), test.tsv (10) and ood.tsv (10) of `mt_corpus` in `folder`."""
    rows = mt_corpus()
    paths = {"train": folder / "train.tsv", "test": folder / "test.tsv", "ood": folder / "ood.tsv"}
    for name, part in (("train", rows[:70]), ("test", rows[70:80]), ("ood", rows[80:])):
        paths[name].write_text("source\ttarget\n" + "".join(f"{s}\t{t}\n" for s, t in part),
                               encoding="utf-8")
    return paths


def build_local_mt(folder: Path, *extra: str) -> Path:
    """An en-hi version built from `write_mt_inputs` files (no paraphrases unless `extra` says)."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = write_mt_inputs(folder)
    code, stdout, stderr = run_pipeline(
        "build", "--task", "en-hi", "--train", str(paths["train"]), "--test", str(paths["test"]),
        "--test-ood", str(paths["ood"]), "--out", str(folder / "out"), "--probe-size", "5",
        "--no-progress", *(extra or ("--paraphraser", "none")))
    assert code == 0, stderr
    return Path(stdout.strip().splitlines()[-1])
