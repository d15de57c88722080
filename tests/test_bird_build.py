"""`pipeline build --task bird` end to end, offline: BIRD-format files, two database folders, the
`sql-values` paraphraser chosen by default without an API key."""
import json
import shutil
from pathlib import Path

import datasets
import pytest

from pipeline.store import SPLIT_FOLDERS
from stages.sql.literals import masked, parse_sql
from stages.text import normalize_text, question_of
from tests.bird_data import write_bird_files
from tests.conftest import run_pipeline

SMALL = ("--probe-size", "5", "--no-progress")
OFFLINE = (*SMALL, "--paraphraser", "sql-values")


def _args(files: dict, out: Path, *extra: str) -> list[str]:
    return ["build", "--task", "bird", "--db-dir", str(files["train_dbs"]), "--db-dir", str(files["dev_dbs"]),
            "--train", str(files["train"]), "--test", str(files["dev"]), "--out", str(out), *SMALL, *extra]


def _with_same_question_twice(files: dict) -> None:
    """One more train pair asking a pool question again with a hint: same question, other source."""
    rows = json.loads(files["train"].read_text())
    rows.append(dict(rows[1], evidence="names refers to name", question_id=len(rows)))
    files["train"].write_text(json.dumps(rows))


@pytest.fixture(scope="module")
def bird_build(tmp_path_factory):
    root = tmp_path_factory.mktemp("bird")
    files = write_bird_files(root)
    _with_same_question_twice(files)
    with pytest.MonkeyPatch.context() as env:
        env.delenv("OPENAI_API_KEY", raising=False)
        code, out, err = run_pipeline(*_args(files, root / "out"))
    assert code == 0, err
    return Path(out.strip().splitlines()[-1]), files, err


def test_six_splits_with_db_ids_and_the_linked_schema_in_every_prompt(bird_build):
    version, _, log = bird_build
    assert "paraphraser: sql-values (OPENAI_API_KEY is not set" in log
    for folder in SPLIT_FOLDERS.values():
        rows = datasets.load_from_disk(str(version / folder))
        assert len(rows) > 0, folder
        for row in rows:
            assert row["db_id"] == ("district_b" if folder in ("eval", "probe") else "district_a")
            assert f"Database {row['db_id']}, the tables and columns relevant" in row["prompt"]
            assert row["prompt"].endswith(f"Question: {row['source']}\nSQL:")
            assert row["completion"] == " " + row["target"]
            assert all(ex["db_id"] for ex in row["examples"])
    county = [r for r in datasets.load_from_disk(str(version / "eval")) if "county?" in r["source"]][0]
    assert "CREATE TABLE schools (" in county["prompt"] and "CREATE TABLE teachers" not in county["prompt"]


def test_sql_paraphrases_carry_their_own_query_that_differs_only_in_literals(bird_build):
    version, _, _ = bird_build
    rows = datasets.load_from_disk(str(version / "eval"))
    para = [r for r in rows if r["eval_context"] == "paraphrase"]
    assert para
    for row in para:
        close = [ex for ex in row["examples"] if ex["origin"] == "paraphrase"]
        assert len(close) == 1 and close[0]["db_id"] == row["db_id"]
        assert close[0]["target"] != row["target"] and close[0]["source"] != row["source"]
        assert masked(parse_sql(close[0]["target"])) == masked(parse_sql(row["target"]))
    manifest = json.loads((version / "manifest.json").read_text())
    stage = manifest["stages"]["paraphrase"]
    assert stage["counters"]["sql_validation"]["kept"] > 0 and stage["rows_out"] > 0
    assert manifest["config"]["paraphraser"] == "sql-values"


def test_no_context_holds_an_example_asking_the_targets_question(bird_build):
    version, _, _ = bird_build
    for folder in SPLIT_FOLDERS.values():
        for row in datasets.load_from_disk(str(version / folder)):
            key = normalize_text(question_of(row["source"]))
            for ex in row["examples"]:
                if ex["origin"] != "paraphrase":
                    assert normalize_text(question_of(ex["source"])) != key, (folder, row["id"])


def test_hints_are_rendered_on_their_own_line(bird_build):
    version, _, _ = bird_build
    hinted = [r for r in datasets.load_from_disk(str(version / "train-zero")) if "\nHint: " in r["source"]]
    assert hinted and all(r["source"].count("\n") == 1 for r in hinted)


def test_databases_are_fingerprinted_without_their_paths(bird_build, tmp_path):
    version, files, _ = bird_build
    manifest_text = (version / "manifest.json").read_text()
    inputs = json.loads(manifest_text)["inputs"]
    assert set(inputs["databases"]) == {"district_a", "district_b"}
    assert all(fp["schema_sha256"] and fp["content_sha256"] for fp in inputs["databases"].values())
    card = (version / "README.md").read_text()
    for published in (manifest_text, card):
        assert str(files["train_dbs"].parent.parent) not in published
    assert "| databases | 2 SQLite databases (district_a, district_b) | fingerprints " in card
    assert card.split("\n")[2].startswith("Text-to-SQL on BIRD")  # local files are bird's declared inputs
    moved = {**files, "train_dbs": tmp_path / "a", "dev_dbs": tmp_path / "b"}
    shutil.copytree(files["train_dbs"], moved["train_dbs"])
    shutil.copytree(files["dev_dbs"], moved["dev_dbs"])
    code, out, err = run_pipeline(*_args(moved, version.parent.parent, "--paraphraser", "sql-values"))
    assert code == 0, err
    assert Path(out.strip().splitlines()[-1]).name == version.name
    assert "cached stages: ingest, plan, retrieve, paraphrase, embed, assemble" in err


def test_a_missing_database_is_one_line_naming_it_and_the_folder(tmp_path):
    files = write_bird_files(tmp_path, train_count=8, dev_count=4)
    code, _, err = run_pipeline("build", "--task", "bird", "--db-dir", str(files["train_dbs"]),
                                "--train", str(files["train"]), "--test", str(files["dev"]),
                                "--out", str(tmp_path / "out"), *OFFLINE)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: database 'district_b' not found")
    assert str(files["train_dbs"]) in err and "--db-dir" in err
    assert not (tmp_path / "out").exists()


def test_without_db_dir_or_files_the_build_says_what_to_pass(tmp_path):
    files = write_bird_files(tmp_path, train_count=8, dev_count=4)
    code, _, err = run_pipeline("build", "--task", "bird", "--train", str(files["train"]), "--test", str(files["dev"]),
                                "--out", str(tmp_path / "out"), *OFFLINE)
    assert code == 2 and "pass --db-dir DIR" in err and err.count("\n") == 1
    code, _, err = run_pipeline("build", "--task", "bird", "--db-dir", str(files["train_dbs"]),
                                "--out", str(tmp_path / "out"), *OFFLINE)
    assert code == 2 and "pass --train PATH and --test PATH" in err


def test_the_built_eval_split_scores_gold_queries_as_all_correct(bird_build, tmp_path, capsys):
    """The build's rows carry what evaluate.py needs: ids, db_id, the gold SQL, the metric."""
    from trainer import evaluate

    version, files, _ = bird_build
    rows = datasets.load_from_disk(str(version / "eval"))
    predictions = tmp_path / "gold.jsonl"
    predictions.write_text("".join(json.dumps({"id": r["id"], "prediction": r["target"]}) + "\n" for r in rows))
    report_path = tmp_path / "report.json"
    code = evaluate.cli(["--data", str(version), "--predictions", str(predictions), "--db-dir",
                         str(files["dev_dbs"]), "--output", str(report_path), "--resamples", "20"])
    assert code == 0, capsys.readouterr().err
    table = json.loads(report_path.read_text())["metrics"]["execution_accuracy"]["id"]
    assert {db: s["mean"] for db, s in table["by_database"].items()} == {"district_b": 1.0}


def test_evaluate_scores_a_tiny_model_on_the_bird_build(bird_build, tmp_path):
    """A model's generations run through the sandbox too: every row gets a 0/1 execution score."""
    import sys

    import torch

    from trainer import evaluate

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import conftest_trainer as fixtures

    version, files, _ = bird_build
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        model = fixtures.write_tiny_model(tmp_path / "model", fixtures.corpus_texts(version))
        output = tmp_path / "eval.json"
        assert evaluate.cli(["--data", str(version), "--model", str(model), "--db-dir", str(files["dev_dbs"]),
                             "--output", str(output), "--limit", "2", "--max-new-tokens", "8",
                             "--resamples", "20"]) == 0
    finally:
        torch.set_num_threads(threads)
    report = json.loads(output.read_text())
    assert report["primary_metric"] == "execution_accuracy" and report["items"] == 2
    records = [json.loads(line) for line in output.with_name("eval.predictions.jsonl").read_text().splitlines()]
    assert records and all(r["execution_accuracy"] in (0.0, 1.0) and r["db_id"] for r in records)
