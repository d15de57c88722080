"""`trainer/evaluate.py --predictions`: outputs of another inference stack scored without a model,
for real align-synth and MT versions, and one-line errors for every way the file can be wrong."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

try:
    import conftest_trainer as trainer_fixtures
    from conftest import build_local_mt
except ImportError:  # tests/ imported as a package
    from tests import conftest_trainer as trainer_fixtures
    from tests.conftest import build_local_mt

from trainer import evaluate

ROOT = Path(__file__).resolve().parents[1]


def _eval_rows(version: Path) -> list[dict]:
    from datasets import load_from_disk

    return load_from_disk(str(Path(version) / "eval")).select_columns(
        ["id", "target", "test_set"]).to_list()


def _write(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    return path


def test_align_synth_predictions_are_scored_without_torch(align_synth_version, tmp_path):
    """In a fresh interpreter, so that the check sees what scoring alone imports."""
    rows = _eval_rows(align_synth_version)
    right = {row["id"] for row in rows[::2]}
    predictions = _write(tmp_path / "api.jsonl", [
        {"id": row["id"], "prediction": row["target"] if row["id"] in right else "nope"}
        for row in reversed(rows)])  # any order
    output = tmp_path / "api.json"
    script = ("import sys; from trainer import evaluate; "
              f"code = evaluate.cli(['--data', {str(align_synth_version)!r}, '--predictions', "
              f"{str(predictions)!r}, '--output', {str(output)!r}, '--resamples', '20']); "
              "heavy = {'torch', 'transformers', 'peft', 'trl'} & set(sys.modules); "
              "print('imported:', sorted(heavy)); sys.exit(code)")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stdout
    report = json.loads(output.read_text())
    assert report["label"] == "api" and report["model"]["predictions"] == str(predictions)
    assert report["rows"] == len(rows) and "generation" not in report
    overall = {name: table["overall"]["mean"]
               for name, table in report["metrics"]["exact_match"].items()}
    expected = sum(row["id"] in right for row in rows) / len(rows)
    assert overall["all"] == pytest.approx(expected)


def test_mt_predictions_score_chrf(tmp_path):
    version = build_local_mt(tmp_path / "mt")
    rows = _eval_rows(version)
    predictions = _write(tmp_path / "vllm.jsonl", [
        {"id": row["id"], "prediction": row["target"] if row["test_set"] == "id" else ""}
        for row in rows])
    output = tmp_path / "mt.json"
    code = evaluate.cli(["--data", str(version), "--predictions", str(predictions),
                         "--output", str(output), "--resamples", "20", "--label", "vllm"])
    assert code == 0
    report = json.loads(output.read_text())
    assert report["label"] == "vllm" and report["primary_metric"] == "chrf"
    chrf = report["metrics"]["chrf"]
    assert chrf["id"]["overall"]["mean"] == 100.0 and chrf["ood"]["overall"]["mean"] == 0.0
    assert report["corpus"]["id"]["all"]["bleu"] == pytest.approx(100.0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict:
    version = trainer_fixtures.write_version(tmp_path_factory.mktemp("predictions") / "data")
    return {"version": str(version), "rows": _eval_rows(version)}


def _records(tiny) -> list[dict]:
    return [{"id": row["id"], "prediction": row["target"]} for row in tiny["rows"]]


def _lines(records: list[dict]) -> list[str]:
    return [json.dumps(record) for record in records]


def _broken(tiny) -> dict[str, tuple[list[str], str]]:
    """name -> (file lines, what the one-line error must say)."""
    good = _lines(_records(tiny))
    first = tiny["rows"][0]["id"]
    return {
        "bad JSON": ([good[0], '{"id": "x", "prediction": '] + good[1:],
                     "p.jsonl:2: not valid JSON"),
        "no prediction key": ([json.dumps({"id": first})] + good[1:],
                              'p.jsonl:1: expected an object with "id" and "prediction"'),
        "non-string prediction": ([json.dumps({"id": first, "prediction": ["SELECT 1"]})] + good[1:],
                                  f"p.jsonl:1: the prediction of id '{first}' is a list, not a string"),
        "non-string id": ([json.dumps({"id": 7, "prediction": "x"})] + good,
                          "p.jsonl:1: id 7 is a int, not a string"),
        "duplicate id": (good + [good[0]],
                         f"p.jsonl:{len(good) + 1}: id '{first}' appears twice (first on line 1)"),
        "unknown ids": (good + _lines([{"id": f"zz{i}", "prediction": ""} for i in range(5)]),
                        "5 ids are not in the eval split of version v0000tiny: 'zz0', 'zz1', "
                        "'zz2', ... (2 more)"),
        "missing ids": (good[4:], f"4 of {len(good)} eval rows have no prediction: '{first}'"),
    }


@pytest.mark.parametrize("case", ["bad JSON", "no prediction key", "non-string prediction",
                                  "non-string id", "duplicate id", "unknown ids", "missing ids"])
def test_a_wrong_predictions_file_is_one_clear_line(tiny, tmp_path, capsys, case):
    lines, message = _broken(tiny)[case]
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(lines) + "\n")
    code = evaluate.cli(["--data", tiny["version"], "--predictions", str(path),
                         "--output", str(tmp_path / "r.json")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert message in err
    assert not (tmp_path / "r.json").exists()


def test_predictions_exclude_a_model_and_may_cover_rows_left_out_by_limit(tiny, tmp_path, capsys):
    path = tmp_path / "p.jsonl"
    path.write_text("\n".join(_lines(_records(tiny))) + "\n\n")  # a blank line is fine
    code = evaluate.cli(["--data", tiny["version"], "--predictions", str(path), "--model", "m"])
    assert code == 2 and "leave --model and --adapter out" in capsys.readouterr().err
    output = tmp_path / "r.json"
    code = evaluate.cli(["--data", tiny["version"], "--predictions", str(path), "--limit", "1",
                         "--output", str(output), "--resamples", "10"])
    assert code == 0
    report = json.loads(output.read_text())
    assert report["rows"] == 2 * 4  # one item per test set, 4 contexts
    assert report["metrics"]["exact_match"]["all"]["overall"]["mean"] == 1.0
