"""The paraphrase stage on an SQL task: LLM answers (from a local OpenAI-compatible server) pass the
same validation as `sql-values` swaps, and rejections are counted by reason."""
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from schemas.rows import PAIR_SCHEMA, TEST_PAIR_SCHEMA
from stages.base import Artifacts, StageStats
from stages.paraphrase.base import BackendContext, make_backend
from stages.paraphrase.stage import Paraphrase
from stages.plan import KINDS
from stages.sql.databases import SqlDatabases
from stages.sql.literals import masked, parse_sql
from tests.bird_data import make_school_db

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fake_llm_server import FakeLLMServer  # noqa: E402

POOL = [("Which schools have more than 1700 students?\nHint: students refers to enrollment",
         "SELECT name FROM schools WHERE enrollment > 1700"),
        ("How many schools are in Napa county?", "SELECT COUNT(*) FROM schools WHERE county = 'Napa'"),
        ("What was the average math score of Lincoln High in 2019?",
         "SELECT S.average FROM scores AS S INNER JOIN schools AS C ON S.school_id = C.id "
         "WHERE C.name = 'Lincoln High' AND S.subject = 'math' AND S.year = 2019")]


def _inputs() -> dict[str, Artifacts]:
    pool = pa.Table.from_pylist([{"id": f"train-{i:06d}", "source": s, "target": t, "db_id": "district_a"}
                                 for i, (s, t) in enumerate(POOL)], schema=PAIR_SCHEMA)
    tests = pa.Table.from_pylist([], schema=TEST_PAIR_SCHEMA)
    kinds = np.full(len(POOL), KINDS.index("paraphrase"), dtype=np.int8)
    return {"ingest": Artifacts(pool=pool, tests=tests), "plan": Artifacts(kinds=kinds)}


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    return SqlDatabases({"district_a": make_school_db(tmp_path_factory.mktemp("dbs"), "district_a", seed=1)})


def _run(backend, databases, n=3) -> tuple[dict, StageStats]:
    stage = Paraphrase(lambda: backend, backend.identity(), n, {}, task_kind="sql", sql_validator=databases.validator)
    stats = StageStats()
    table = stage.run(_inputs(), stats)["paraphrases"]
    return {row["source"]: row for row in table.to_pylist()}, stats


def test_llm_paraphrases_are_validated_and_rejections_counted(databases, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeLLMServer() as server:  # it adds i+1 to every number of the question and the query
        context = BackendContext(task_kind="sql", source_lang=None, target_lang=None, cache_dir=tmp_path,
                                 progress=False, sql=databases)
        backend = make_backend("openai", {"model": "fake-model", "base_url": server.openai_url, "batch_size": 3},
                               context)
        rows, stats = _run(backend, databases)
    enrollment = rows[POOL[0][0]]
    assert enrollment["targets"][0] == "SELECT name FROM schools WHERE enrollment > 1701"
    assert "1701" in enrollment["paraphrases"][0] and "\nHint:" not in enrollment["paraphrases"][0]
    years = rows[POOL[2][0]]["targets"]
    assert years == [POOL[2][1].replace("2019", "2020"), POOL[2][1].replace("2019", "2021")]  # 2022: no rows
    assert stats.dropped["sql: no rows"] >= 1
    assert stats.counters["sql_validation"]["rejected"]["no rows"] == stats.dropped["sql: no rows"]
    for row in rows.values():
        for sql in row["targets"]:
            assert masked(parse_sql(sql)) == masked(parse_sql(dict(POOL)[row["source"]]))


def test_sql_values_paraphrases_keep_the_hint_rewritten(databases, tmp_path):
    context = BackendContext(task_kind="sql", source_lang=None, target_lang=None, cache_dir=tmp_path, sql=databases)
    rows, stats = _run(make_backend("sql-values", {}, context), databases, n=2)
    napa = rows[POOL[1][0]]
    assert len(napa["paraphrases"]) == 2 and all("Napa" not in p for p in napa["paraphrases"])
    hinted = rows[POOL[0][0]]
    assert all(p.endswith("\nHint: students refers to enrollment") for p in hinted["paraphrases"])
    assert stats.rows_out == 3 and not stats.counters["sql_validation"]["rejected"]
