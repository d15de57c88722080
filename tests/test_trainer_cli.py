"""What the trainer commands say before any model loads: bad paths and empty splits fail within
seconds with one `error:` line, and --help prints every option with its default."""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

try:
    import conftest_trainer as fixtures
except ImportError:  # tests/ imported as a package
    from tests import conftest_trainer as fixtures

from trainer import compare, evaluate, probe, sft
from trainer.config import CompareConfig, EvalConfig, ProbeConfig, TrainConfig, build_parser

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = {"sft": sft, "evaluate": evaluate, "probe": probe, "compare": compare}


@pytest.fixture(scope="module")
def version(tmp_path_factory) -> Path:
    """A hand-written version folder (no model is built: nothing here gets that far)."""
    return fixtures.write_version(tmp_path_factory.mktemp("cli") / "data").resolve()


@pytest.fixture
def model_folder(tmp_path) -> Path:
    """Passes the path checks (a folder with config.json) but holds no weights."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return folder


def one_error_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    return lines[0]


@pytest.mark.parametrize("script", ["sft", "evaluate", "probe"])
def test_missing_model_folder_fails_fast_with_one_line(script, version, tmp_path):
    """Before the check, transformers took the missing folder for a Hub id and failed after
    25-60 s of offline retries with a ~90-line traceback."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, f"trainer/{script}.py", "--data", str(version),
                           "--model", str(tmp_path / "missing")],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    seconds = time.perf_counter() - started
    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "--model" in line and "config.json" in line
    assert seconds < 5.0


def test_adapter_and_its_recorded_base_model_are_checked(version, tmp_path, capsys):
    assert evaluate.cli(["--data", str(version), "--adapter", str(tmp_path / "none")]) == 2
    assert "--adapter" in one_error_line(capsys.readouterr().err)
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text("{}")
    (adapter / "run_config.json").write_text(json.dumps(
        {"config": {"model": str(tmp_path / "moved")},
         "base_model": {"path": str(tmp_path / "moved"), "given": "moved"}}))
    for script in (evaluate, probe):
        assert script.cli(["--data", str(version), "--adapter", str(adapter)]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert "moved" in line and "pass --model" in line


def _version_with_empty_similar(version: Path, tmp_path: Path) -> Path:
    """The tiny version as a `--tau 2` build records it: train-similar counted 0 rows, every
    target dropped by tau. Its split folder is left empty, so loading it would fail."""
    copy = tmp_path / "tau2"
    shutil.copytree(version, copy, symlinks=True)
    shutil.rmtree(copy / "train-similar")
    (copy / "train-similar").mkdir()
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["config"]["tau"] = 2.0
    manifest["stages"]["assemble"] = {
        "dropped": {"similar: mean cosine below tau": 60},
        "counters": {"rows": {"train_zero": 60, "train_random": 60, "train_similar": 0,
                              "train_contrastive": 60, "eval": 36, "probe": 16}}}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_empty_split_names_the_build_option_that_emptied_it(version, model_folder, tmp_path,
                                                            capsys):
    data = _version_with_empty_similar(version, tmp_path)
    assert sft.cli(["--data", str(data), "--model", str(model_folder), "--regime", "similar"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "train-similar" in line and "0 rows" in line and "--tau 2.0" in line
    assert "all 60 targets" in line and "lower --tau" in line


def test_empty_split_without_recorded_counts(version, tmp_path):
    """A manifest that does not count rows (older builds): the loaded split is checked instead."""
    from schemas.errors import UserError
    from schemas.rows import TRAIN_SCHEMA
    from trainer.data import load_split, open_version

    copy = tmp_path / "empty"
    shutil.copytree(version, copy, symlinks=True)
    shutil.rmtree(copy / "train-random")
    fixtures.save_split([], TRAIN_SCHEMA, copy / "train-random")
    with pytest.raises(UserError, match="train-random of version v0000tiny has 0 rows"):
        load_split(open_version(copy), "train-random")


@pytest.mark.parametrize("flag, words", [("--train-limit", "keeps no training rows"),
                                         ("--limit", "keeps no test items")])
def test_limits_of_zero_are_refused(flag, words, version, model_folder, capsys):
    assert sft.cli(["--data", str(version), "--model", str(model_folder), flag, "0"]) == 2
    assert words in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_help_prints_the_usage_examples_as_written(name, capsys):
    """The module docstring is the usage text; its `\\` continuation lines must survive."""
    source = (REPO / "trainer" / f"{name}.py").read_text()
    continued = [line.strip() for line in ast.get_docstring(ast.parse(source)).splitlines()
                 if line.rstrip().endswith("\\")]
    assert continued
    with pytest.raises(SystemExit):
        SCRIPTS[name].cli(["--help"])
    shown = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert all(line in shown for line in continued)


@pytest.mark.parametrize("model_cls", [TrainConfig, EvalConfig, ProbeConfig, CompareConfig])
def test_every_flag_has_help_with_its_default(model_cls):
    for action in build_parser(model_cls, None)._actions:
        if action.dest == "help":
            continue
        text = action.help or ""
        assert "(default: " in text or "(required" in text, action.option_strings
        if action.dest in model_cls.model_fields:
            assert model_cls.model_fields[action.dest].description, action.dest
    text = build_parser(TrainConfig, None).format_help()
    assert "(default: 0.02)" in text and "(default: every row)" in text
