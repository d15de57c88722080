"""Literal swaps (the `sql-values` paraphraser) and the validation every SQL paraphrase passes."""
import json

import numpy as np
import pytest

from stages.paraphrase.base import BackendContext, make_backend
from stages.sql.databases import SqlDatabases
from stages.sql.literals import masked, parse_sql
from stages.sql.sandbox import run_readonly
from stages.sql.swap import NO_LITERAL, literal_swaps
from tests.bird_data import make_school_db, pairs


@pytest.fixture(scope="module")
def databases(tmp_path_factory):
    path = make_school_db(tmp_path_factory.mktemp("dbs"), "district_a", seed=1)
    return SqlDatabases({"district_a": path})


def _swaps(databases, record, n=3, seed=0):
    def accept(sql):
        return databases.validator.reason("district_a", record["SQL"], sql) is None

    return literal_swaps(record["question"], record["evidence"], record["SQL"], databases.schema("district_a"), n,
                         np.random.default_rng(seed), accept)


def test_every_swap_differs_only_in_literals_runs_and_matches_its_question(databases):
    records = pairs(databases.paths["district_a"], "district_a", 24, seed=5)
    made = 0
    for record in records:
        swaps, why = _swaps(databases, record)
        assert swaps or why, record
        original = masked(parse_sql(record["SQL"]))
        for swap in swaps:
            made += 1
            assert masked(parse_sql(swap.sql)) == original and swap.sql != record["SQL"]
            assert run_readonly(databases.paths["district_a"], swap.sql).rows
            assert swap.question != record["question"] and swap.evidence == record["evidence"]
            new_words = set(swap.question.split()) - set(record["question"].split())
            assert all(word.strip("?.") in swap.sql for word in new_words), (swap, record)
    assert made >= 3 * len(records) // 2


def test_swaps_are_deterministic_and_rewrite_the_evidence_too(databases):
    record = {"question": "How many schools are in Napa county?", "evidence": "Napa county refers to county = 'Napa'",
              "SQL": "SELECT COUNT(*) FROM schools WHERE county = 'Napa'"}
    first, _ = _swaps(databases, record, seed=7)
    assert first == _swaps(databases, record, seed=7)[0]
    for swap in first:
        county = swap.sql.split("'")[1]
        assert swap.question == f"How many schools are in {county} county?"
        assert swap.evidence == f"{county} county refers to county = '{county}'"


def test_a_pair_whose_question_names_no_literal_is_skipped(databases):
    record = {"question": "How many charter schools are there?", "evidence": "charter refers to charter = 1",
              "SQL": "SELECT COUNT(*) FROM schools WHERE charter = 1"}
    assert _swaps(databases, record) == ([], NO_LITERAL)


@pytest.mark.parametrize("candidate, reason", [
    ("SELECT COUNT(*) FROM schools WHERE county = 'Kern'", None),
    ("SELECT COUNT(*) FROM schools WHERE county = 'Atlantis' AND enrollment > 0", "changes more than literals"),
    ("SELECT name FROM schools WHERE county = 'Atlantis'", "changes more than literals"),
    ("SELECT COUNT(*) FROM schools WHERE county = 'Kern'; DROP TABLE schools", "does not parse"),
    ("SELECT COUNT(*) FROM schools WHERE county = ", "does not parse"),
    ("SELECT COUNT(*) FROM schools WHERE county = 5", "changes more than literals"),
])
def test_the_validator_names_the_first_failed_check(databases, candidate, reason):
    original = "SELECT COUNT(*) FROM schools WHERE county = 'Napa'"
    assert databases.validator.reason("district_a", original, candidate) == reason


def test_a_query_returning_no_rows_or_failing_is_rejected(databases):
    original = "SELECT name FROM schools WHERE county = 'Napa'"
    assert databases.validator.reason("district_a", original, "SELECT name FROM schools WHERE county = 'Atlantis'") \
        == "no rows"
    original = "SELECT name FROM nowhere WHERE county = 'Napa'"
    assert databases.validator.reason("district_a", original, "SELECT name FROM nowhere WHERE county = 'Kern'") \
        == "execution error"


def test_the_backend_counts_skipped_items_and_answers_json_pairs(databases, tmp_path):
    context = BackendContext(task_kind="sql", source_lang=None, target_lang=None, cache_dir=tmp_path, sql=databases)
    backend = make_backend("sql-values", {}, context)
    backend.check_ready()
    items = [json.dumps({"db_id": "district_a", "evidence": "", "question": q, "sql": s}) for q, s in (
        ("How many schools are in Kern county?", "SELECT COUNT(*) FROM schools WHERE county = 'Kern'"),
        ("How many schools are there?", "SELECT COUNT(*) FROM schools WHERE 1 = 1"))]
    out = backend.paraphrase(items, 2)
    assert len(out.paraphrases[0]) == 2 and out.paraphrases[1] == []
    assert out.failures == {NO_LITERAL: 1}
    assert {"question", "evidence", "sql"} == set(json.loads(out.paraphrases[0][0]))
