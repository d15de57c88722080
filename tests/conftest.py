"""Shared fixtures: small real builds of the embedded default task, made once per test session."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path

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
