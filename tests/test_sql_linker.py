"""Reading a database's schema, its fingerprint, the schema linker and literal masking (no query runs)."""
import shutil
import sqlite3

import pytest

from stages.sql.linker import link, linked_schema_text
from stages.sql.literals import bound_literals, same_but_literals
from stages.sql.schema import database_fingerprint, read_schema
from tests.bird_data import make_school_db


@pytest.fixture(scope="module")
def school_db(tmp_path_factory):
    return make_school_db(tmp_path_factory.mktemp("dbs"), "district_a", seed=1)


@pytest.fixture(scope="module")
def schema(school_db):
    return read_schema(school_db, "district_a")


def _shown(schema, text):
    return {item.table.name: [c.name for c in item.columns] for item in link(schema, text)}


def test_schema_reads_tables_keys_and_sample_values(schema):
    assert [t.name for t in schema.tables] == ["schools", "scores", "teachers"]
    teachers = schema.table("TEACHERS")
    assert [c.name for c in teachers.columns] == ["id", "school_id", "name", "subject", "years"]
    assert teachers.column("id").primary_key and not teachers.column("name").primary_key
    assert [(fk.column, fk.ref_table, fk.ref_column) for fk in teachers.foreign_keys] == [("school_id", "schools", "id")]
    assert set(schema.table("schools").column("county").values) == {"Alameda", "Fresno", "Kern", "Marin", "Napa",
                                                                      "Sonoma"}


def test_a_value_in_the_question_links_its_column_and_only_its_table(schema):
    shown = _shown(schema, "How many schools are in Fresno county?")
    assert list(shown) == ["schools"]
    text = linked_schema_text(schema, "How many charter schools are in Fresno?")
    assert "county TEXT, -- e.g. 'Fresno'" in text and "CREATE TABLE teachers" not in text


def test_linked_tables_keep_their_keys_and_the_foreign_keys_between_them(schema):
    shown = _shown(schema, "Which teachers teach reading at Jefferson Charter?")
    assert {"schools", "teachers"} <= set(shown)
    assert shown["teachers"][:2] == ["id", "school_id"] and "subject" in shown["teachers"]
    assert shown["schools"][0] == "id" and "name" in shown["schools"]
    text = linked_schema_text(schema, "Which teachers teach reading at Jefferson Charter?")
    assert "FOREIGN KEY (school_id) REFERENCES schools(id)" in text


def test_a_generic_column_name_does_not_bring_its_table_alone(schema):
    """"names" matches teachers.name, but a question about school names is not about teachers."""
    assert list(_shown(schema, "List the names of schools in Oakland.")) == ["schools"]


def test_years_and_evidence_link_columns(schema):
    shown = _shown(schema, "What was the average math score of Jefferson Middle in 2019?\nHint: average score "
                           "refers to average")
    assert {"year", "subject", "average"} <= set(shown["scores"])


def test_nothing_linked_shows_the_whole_schema(schema):
    assert set(_shown(schema, "What is the weather like?")) == {"schools", "scores", "teachers"}


def test_fingerprint_follows_content_not_place(school_db, tmp_path):
    copy = tmp_path / "elsewhere" / "district_a.sqlite"
    copy.parent.mkdir()
    shutil.copy(school_db, copy)
    assert database_fingerprint(copy) == database_fingerprint(school_db)
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE schools SET city = 'Oaklandia' WHERE id = 1")  # same schema, same size
    changed = database_fingerprint(copy)
    assert changed["schema_sha256"] == database_fingerprint(school_db)["schema_sha256"]
    assert changed != database_fingerprint(school_db)
    assert str(tmp_path) not in str(changed)


def test_same_but_literals_compares_masked_syntax_trees():
    original = "SELECT T1.name FROM teachers AS T1 WHERE T1.subject = 'math' AND T1.years > 3"
    assert same_but_literals(original, "select T1.name from teachers AS T1 where T1.subject = 'art' and T1.years > 10")
    assert not same_but_literals(original, "SELECT T1.name FROM teachers AS T1 WHERE T1.subject = 'math' OR T1.years > 3")
    assert not same_but_literals(original, "SELECT T1.name FROM teachers AS T1 WHERE T1.subject = 3 AND T1.years > 3")
    assert not same_but_literals(original, "SELECT T1.id FROM teachers AS T1 WHERE T1.subject = 'x' AND T1.years > 3")


def test_bound_literals_resolve_aliases_and_skip_limits_and_patterns(schema):
    sql = ("SELECT T1.name FROM teachers AS T1 INNER JOIN schools AS T2 ON T1.school_id = T2.id "
           "WHERE T2.county = 'Napa' AND years BETWEEN 2 AND 9 AND T2.name LIKE '%High' LIMIT 1")
    found = [(b.value, b.table, b.column, sql[b.start:b.end]) for b in bound_literals(sql, schema)]
    assert found == [("Napa", "schools", "county", "'Napa'"), ("2", "teachers", "years", "2"),
                     ("9", "teachers", "years", "9")]


def test_a_foreign_key_without_a_column_points_at_the_referenced_tables_primary_key(tmp_path):
    path = tmp_path / "keys.sqlite"
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE child (child_id INTEGER PRIMARY KEY, parent_ref INTEGER REFERENCES parent);"
        "CREATE TABLE parent (parent_id INTEGER PRIMARY KEY, name TEXT);"
        "CREATE TABLE loose (x INTEGER REFERENCES nokey); CREATE TABLE nokey (y TEXT);")
    connection.close()
    schema = read_schema(path, "keys")
    assert [(fk.column, fk.ref_table, fk.ref_column) for fk in schema.table("child").foreign_keys] == [
        ("parent_ref", "parent", "parent_id")]
    assert [(fk.ref_table, fk.ref_column) for fk in schema.table("loose").foreign_keys] == [("nokey", "x")]
