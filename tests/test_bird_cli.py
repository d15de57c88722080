"""The `bird` task's settings and input files, without building: paraphraser default, sources,
BIRD's JSON array files and the rows ingest rejects."""
import json

import pyarrow as pa

from pipeline.cli import parse_args, resolve_config
from pipeline.sources import cmd_sources
from pipeline.tasks import load_task
from schemas.config import RunOptions, SourceSpec
from stages.base import StageStats
from stages.ingest.sqlfiles import sql_rows
from stages.ingest.stage import Ingest


def _config(*extra):
    return resolve_config(parse_args(["build", "--task", "bird", *extra]))


def test_sql_values_is_the_default_without_a_key_and_the_llm_with_one(monkeypatch, capsys):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    config = _config()
    assert (config.paraphraser, config.paraphraser_options) == ("sql-values", {})
    assert "OPENAI_API_KEY is not set" in capsys.readouterr().err
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    config = _config()
    assert config.paraphraser == "openai" and config.paraphraser_options["prompt"] == "sql"
    assert _config("--paraphraser", "sql-values").paraphraser == "sql-values"


def test_sources_says_bird_builds_from_local_files():
    lines = []
    assert cmd_sources("bird", RunOptions(), None, False, False, out=lines.append) == 0
    assert lines == ["bird: declares no remote source, nothing to fetch; build it from local files "
                     "(--train PATH --test PATH --db-dir DIR)"]


def _write(tmp_path, records, name="train.json"):
    path = tmp_path / name
    path.write_text(json.dumps(records, indent=2) if name.endswith(".json") else
                    "".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return SourceSpec(path=str(path), source_column="question", target_column="SQL")


def test_bird_json_array_rows_render_question_and_hint(tmp_path):
    spec = _write(tmp_path, [
        {"db_id": "d", "question": "  How many  schools?", "evidence": "schools refers\nto schools", "SQL": "SELECT 1 "},
        {"db_id": "d", "question": "Which city?", "evidence": "", "SQL": "SELECT  'a  b'"}])
    rows = list(sql_rows(spec))
    assert [(r.line, r.source, r.target, r.db_id) for r in rows] == [
        (1, "How many schools?\nHint: schools refers to schools", "SELECT 1 ", "d"),
        (2, "Which city?", "SELECT  'a  b'", "d")]


def test_ingest_rejects_rows_without_db_id_and_keeps_sql_spacing(tmp_path):
    records = [{"db_id": "d", "question": f"Question {i}?", "evidence": "", "SQL": f"SELECT '{i}  x'"} for i in range(4)]
    records[1]["db_id"] = ""
    train = _write(tmp_path, records)
    test = _write(tmp_path, records[2:], "dev.jsonl")
    ingest = Ingest(load_task("bird"), 0, {"train": train.path, "test": test.path})
    stats = StageStats()
    out = ingest.run({}, stats)
    assert out["rejects"].to_pylist() == [{"file": "train.json", "line": 2, "reason": "missing db_id", "detail": ""}]
    assert out["pool"].to_pylist() == [{"id": "train-000000", "source": "Question 0?", "target": "SELECT '0  x'",
                                        "db_id": "d"}]
    assert out["tests"].column("db_id") == pa.chunked_array([["d", "d"]])
    assert stats.dropped["pool row also in a test set"] == 2
