"""The `pipeline` CLI answers bad options in one line before any work, and documents every flag."""
import argparse

import pytest

from pipeline import cli
from pipeline.tasks import builtin_tasks, load_task
from schemas.config import BuildConfig
from tests.conftest import SMALL, run_pipeline

BAD_VALUES = [
    ("--seed", "-1", "an integer >= 0"), ("--seed", "x", "an integer >= 0"),
    ("--threads", "0", "an integer >= 1"), ("--k", "0", "an integer >= 1"), ("--m", "-2", "an integer >= 1"),
    ("--pool-size", "0", "an integer >= 1"), ("--test-size", "-5", "an integer >= 1"),
    ("--ood-size", "0", "an integer >= 1"), ("--probe-size", "0", "an integer >= 1"),
    ("--n-paraphrases", "0", "an integer >= 1"), ("--batch-size", "0", "an integer >= 1"),
    ("--p", "1.5", "a number in [0, 1]"), ("--eps", "-0.1", "a number in [0, 1]"),
    ("--w-random", "2", "a number in [0, 1]"), ("--w-similar", "-1", "a number in [0, 1]"),
    ("--w-near", "nan", "a number in [0, 1]"), ("--w-paraphrase", "1.01", "a number in [0, 1]"),
    ("--tau", "-1.5", "a number >= -1"), ("--max-cost", "0", "a number > 0"), ("--max-cost", "-3", "a number > 0"),
]


def _one_error_line(code, out, err):
    assert code == 2 and out == "", err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    return lines[0]


@pytest.mark.parametrize("option, value, allowed", BAD_VALUES)
def test_numeric_options_are_checked_up_front(tmp_path, option, value, allowed):
    line = _one_error_line(*run_pipeline("build", "--task", "align-synth", "--out", str(tmp_path), option, value))
    assert f"argument {option}: got {value!r}" in line or f"argument {option}: got {value};" in line, line
    assert allowed in line, line
    assert not tmp_path.joinpath("align-synth").exists() and not tmp_path.joinpath(".cache").exists()


def test_unknown_option_is_one_line_too(tmp_path):
    line = _one_error_line(*run_pipeline("build", "--out", str(tmp_path), "--bogus", "1"))
    assert "--bogus" in line and "--help" in line


def test_m_follows_k_unless_given():
    task = load_task("align-synth")
    assert BuildConfig(task=task).m == 20  # the default k keeps m (and so every version id)
    assert BuildConfig(task=task, k=30).m == 30
    assert BuildConfig(task=task, k=30, m=40).m == 40


def test_large_k_reaches_the_pool_size_message(tmp_path):
    code, out, err = run_pipeline("build", "--task", "align-synth", "--out", str(tmp_path), *SMALL, "--k", "100000")
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("error: k=100000 is larger than the pool allows") and "lower --k" in line, err
    assert "m (near candidates" not in err


def test_explicit_m_below_k_says_so(tmp_path):
    line = _one_error_line(*run_pipeline("build", "--out", str(tmp_path), "--m", "5", "--k", "10"))
    assert "--m must be >= --k (got --m 5, --k 10)" in line


def test_versions_of_an_unknown_task_say_it_is_unknown(tmp_path):
    line = _one_error_line(*run_pipeline("versions", "--task", "nope", "--out", str(tmp_path)))
    assert "unknown task 'nope'" in line and all(name in line for name in builtin_tasks())
    (tmp_path / "nope").mkdir()  # a task built from a YAML elsewhere: its folder makes it known
    code, out, _ = run_pipeline("versions", "--task", "nope", "--out", str(tmp_path))
    assert code == 0 and "no built versions of nope" in out
    code, out, _ = run_pipeline("versions", "--task", "en-de", "--out", str(tmp_path))
    assert code == 0 and "no built versions of en-de" in out


def test_tasks_prints_aligned_one_line_descriptions():
    code, out, _ = run_pipeline("tasks")
    lines = out.strip().splitlines()
    assert code == 0 and [line.split()[0] for line in lines] == builtin_tasks()
    starts = {len(line) - len(line[len(line.split()[0]):].lstrip()) for line in lines}
    assert len(starts) == 1  # every description starts in the same column
    by_name = dict(line.split(None, 1) for line in lines)
    assert by_name["align-synth"] == "Synthetic alignment task, the embedded default (no network, no API key)."
    assert by_name["en-lt"] == "English to Lithuanian translation."


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    raise AssertionError("no subcommands")


def test_every_flag_has_help_naming_its_default():
    missing = []
    for name, sub in _subparsers(cli.make_parser()).items():
        for action in sub._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            text = (action.help or "") % {**vars(action), "prog": sub.prog}
            label = f"{name} {'/'.join(action.option_strings) or action.dest}"
            takes_value = action.option_strings and action.nargs != 0 and not action.required
            has_default = action.default not in (None, False, [], argparse.SUPPRESS)
            if not text or (has_default and str(action.default) not in text) or (takes_value and "default" not in text):
                missing.append(f"{label}: {text!r}")
    assert missing == []
