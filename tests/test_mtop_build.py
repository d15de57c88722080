"""`mtop-de` end to end on tiny generated data: an offline build from local files without an
out-of-domain set, paraphrases that lose a slot value dropped and counted, the XSemPLR converter,
and `evaluate.py` scoring exact match on the build with a tiny random model."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import datasets
import pytest

from pipeline.xsemplr import main as xsemplr_main
from stages.paraphrase.slots import slot_values
from tests.conftest import run_pipeline

sys.path.insert(0, str(Path(__file__).resolve().parent))
import conftest_trainer as fixtures  # noqa: E402
from mtop_data import mtop_pairs, write_jsonl  # noqa: E402

SPLITS = ("train-zero", "train-random", "train-similar", "train-contrastive", "eval", "probe")


@pytest.fixture(scope="module")
def mtop_build(tmp_path_factory):
    """mtop-de from train/test JSONL files and a paraphrase file where, for every utterance, one
    paraphrase keeps its slot values and one loses the first."""
    root = tmp_path_factory.mktemp("mtop")
    pairs = mtop_pairs("de")
    train, test = write_jsonl(root / "train.jsonl", pairs[:34]), write_jsonl(root / "test.jsonl", pairs[34:])
    lines = [{"source": u, "paraphrases": [f"Sag mir bitte : {u}", u.replace(slot_values(lf)[0], "etwas", 1)]}
             for u, lf in pairs]
    para = root / "para.jsonl"
    para.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    code, out, err = run_pipeline("build", "--task", "mtop-de", "--train", str(train), "--test", str(test),
                                  "--paraphraser", "file", "--paraphraser-option", f"path={para}",
                                  "--out", str(root / "runs"), "--probe-size", "5", "--no-progress")
    assert code == 0, err
    return Path(out.strip().splitlines()[-1])


def test_builds_all_six_splits_without_an_out_of_domain_set(mtop_build):
    for split in SPLITS:
        assert len(datasets.load_from_disk(str(mtop_build / split))) > 0, split
    ev = datasets.load_from_disk(str(mtop_build / "eval"))
    assert set(ev["test_set"]) == {"id"} and len(set(ev["target_id"])) == 10
    assert set(ev["eval_context"]) == {"random", "topk", "one_near", "paraphrase"}
    assert set(datasets.load_from_disk(str(mtop_build / "probe"))["test_set"]) == {"id"}
    manifest = json.loads((mtop_build / "manifest.json").read_text())
    assert manifest["config"]["task"]["metric"] == "exact_match"
    assert manifest["stages"]["ingest"]["counters"]["test_ood"] == 0


def test_prompts_show_utterances_and_logical_forms(mtop_build):
    row = datasets.load_from_disk(str(mtop_build / "train-random"))[0]
    assert row["prompt"].startswith("Consider the following 4 German utterances with their MTOP logical forms.\n"
                                    "Example 1:\nUtterance: ")
    assert "\nLogical form: [IN:" in row["prompt"]
    assert row["prompt"].endswith(f"Parse the utterance into its MTOP logical form.\nUtterance: {row['source']}"
                                  "\nLogical form:")
    assert row["completion"] == " " + row["target"] and row["target"].startswith("[IN:")
    zero = datasets.load_from_disk(str(mtop_build / "train-zero"))[0]
    assert zero["prompt"].startswith("Parse the utterance into its MTOP logical form.\nUtterance: ")


def test_paraphrases_that_lose_a_slot_value_are_dropped_and_counted(mtop_build):
    manifest = json.loads((mtop_build / "manifest.json").read_text())
    stage = manifest["stages"]["paraphrase"]
    assert stage["dropped"] == {"slot value missing": stage["rows_in"]}  # one per paraphrased utterance
    assert stage["rows_out"] == stage["rows_in"]  # the good one is left for each
    ev = datasets.load_from_disk(str(mtop_build / "eval"))
    for row in (r for r in ev if r["eval_context"] == "paraphrase"):
        close = [e for e in row["examples"] if e["origin"] == "paraphrase"]
        assert len(close) == 1 and close[0]["source"] == f"Sag mir bitte : {row['source']}"
        assert close[0]["target"] == row["target"]


def test_the_card_describes_the_task_not_an_override(mtop_build):
    card = (mtop_build / "README.md").read_text()
    assert "German utterances to MTOP logical forms" in card and "instead of the task's declared" not in card
    assert "| train | train.jsonl | sha256 " in card


def test_cli_lists_the_tasks_and_says_they_need_local_files(tmp_path):
    code, out, _ = run_pipeline("tasks")
    assert code == 0 and all(f"mtop-{lang}  " in out for lang in ("de", "es", "fr"))
    code, out, _ = run_pipeline("sources", "--task", "mtop-fr", "--out", str(tmp_path))
    assert code == 0 and "declares no remote source" in out and "--train PATH --test PATH" in out
    code, _, err = run_pipeline("build", "--task", "mtop-es", "--out", str(tmp_path), "--no-progress")
    assert code == 2 and "declares no training source; pass --train PATH" in err


def test_xsemplr_files_convert_to_source_target_lines(tmp_path, capsys):
    records = [{"id": "3232", "question": {"en": "call Avery M", "de": "Ruf Avery M . an ."},
                "mr": {"slot_intent": {"en": "[IN:CREATE_CALL [SL:CONTACT Avery M ] ]",
                                       "de": "[IN:CREATE_CALL [SL:CONTACT Avery M . ] ]"}}}]
    (tmp_path / "dev.json").write_text(json.dumps(records, indent=4, ensure_ascii=False), encoding="utf-8")
    assert xsemplr_main(["--lang", "de", str(tmp_path / "dev.json"), str(tmp_path / "dev.de.jsonl")]) == 0
    lines = [json.loads(line) for line in (tmp_path / "dev.de.jsonl").read_text(encoding="utf-8").splitlines()]
    assert lines == [{"id": "3232", "source": "Ruf Avery M . an .",
                      "target": "[IN:CREATE_CALL [SL:CONTACT Avery M . ] ]"}]
    assert xsemplr_main(["--lang", "fr", str(tmp_path / "dev.json"), str(tmp_path / "x.jsonl")]) == 2
    assert "record 1 has no 'fr' question" in capsys.readouterr().err
    assert not (tmp_path / "x.jsonl").exists()


def test_exact_match_counts_a_logical_form_right_up_to_white_space(mtop_build):
    from trainer.config import EvalConfig
    from trainer.data import load_split, open_version
    from trainer.evaluate import build_report

    version = open_version(mtop_build)
    rows = load_split(version, "eval").remove_columns(["examples"]).to_list()
    predictions = [("  " + r["target"].replace(" ] ", "  ]  ") if i % 2 == 0 else r["target"].replace(" ] ]", " ]"))
                   for i, r in enumerate(rows)]
    report, records = build_report(version, rows, predictions, EvalConfig(data=str(mtop_build), resamples=20))
    assert report["primary_metric"] == "exact_match" and list(report["metrics"]["exact_match"]) == ["id"]
    assert [r["exact_match"] for r in records] == [float(i % 2 == 0) for i in range(len(rows))]


def test_evaluate_scores_a_tiny_model_on_the_build(mtop_build, tmp_path):
    import torch

    from trainer import evaluate

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = fixtures.write_tiny_model(tmp_path / "model", fixtures.corpus_texts(mtop_build))
        output = tmp_path / "eval.json"
        assert evaluate.cli(["--data", str(mtop_build), "--model", str(model), "--output", str(output),
                             "--limit", "2", "--max-new-tokens", "8", "--resamples", "20"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads(output.read_text())
    assert report["primary_metric"] == "exact_match" and report["dataset"]["task"] == "mtop-de"
    assert list(report["metrics"]["exact_match"]) == ["id"] and report["items"] == 2
    records = [json.loads(line) for line in output.with_name("eval.predictions.jsonl").read_text().splitlines()]
    assert len(records) == 8
    for record in records:
        expected = float(bool(record["prediction"].split()) and record["prediction"].split() == record["target"].split())
        assert record["exact_match"] == expected


def test_a_predictions_file_is_scored_by_exact_match(mtop_build, tmp_path, capsys):
    from trainer import evaluate

    rows = datasets.load_from_disk(str(mtop_build / "eval"))
    predictions = tmp_path / "predictions.jsonl"
    predictions.write_text("".join(json.dumps({"id": r["id"], "prediction": "  " + r["target"].replace(" ", "  ")},
                                              ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    output = tmp_path / "report.json"
    code = evaluate.cli(["--data", str(mtop_build), "--predictions", str(predictions), "--output", str(output),
                         "--resamples", "20"])
    assert code == 0, capsys.readouterr().err
    table = json.loads(output.read_text())["metrics"]["exact_match"]["id"]
    assert all(s["mean"] == 1.0 for s in table["by_bin"].values() if s["rows"])
