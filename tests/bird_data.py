"""Small real BIRD-style data for the `bird` tests: SQLite databases and question/SQL pairs.

Not a conftest.py on purpose (others own that name); the test modules import from here.
`make_school_db` writes `<db_dir>/<db_id>/<db_id>.sqlite` (BIRD's layout) with three tables:
schools (60 rows), teachers (150) and scores (240), from a seeded generator. `pairs` fills
question/SQL templates with values read back from a database, so every pair returns rows;
`write_bird_files` lays out a train and a dev split the way BIRD ships them (databases in two
folders, train as one JSON array, dev here as JSON Lines to cover both readers).
"""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np

from tests.conftest_sql import write_database

COUNTIES = ("Alameda", "Fresno", "Kern", "Marin", "Napa", "Sonoma")
CITIES = ("Oakland", "Berkeley", "Clovis", "Bakersfield", "Novato", "Petaluma")
SUBJECTS = ("math", "reading", "science", "history")
FIRST = ("Lincoln", "Washington", "Jefferson", "Roosevelt", "Madison", "Franklin", "Hamilton", "Monroe",
         "Adams", "Jackson")
KINDS = ("High", "Elementary", "Middle", "Academy", "Prep", "Charter")


def make_school_db(db_dir: Path, db_id: str, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    names = [f"{a} {b}" for a in FIRST for b in KINDS]
    schools = [(i + 1, names[i], COUNTIES[i % 6], CITIES[(i // 2) % 6], int(rng.integers(150, 2500)), i % 3 == 0)
               for i in range(60)]
    teachers = [(i + 1, int(rng.integers(1, 61)), f"teacher {i + 1}", SUBJECTS[i % 4], int(rng.integers(1, 35)))
                for i in range(150)]
    scores = [(s, year, subject, round(float(rng.uniform(40, 100)), 1))
              for s in range(1, 21) for year in (2019, 2020, 2021) for subject in SUBJECTS]
    return write_database(
        db_dir, db_id,
        "CREATE TABLE schools (id INTEGER PRIMARY KEY, name TEXT, county TEXT, city TEXT, enrollment INTEGER,"
        " charter INTEGER);"
        "CREATE TABLE teachers (id INTEGER PRIMARY KEY, school_id INTEGER REFERENCES schools(id), name TEXT,"
        " subject TEXT, years INTEGER);"
        "CREATE TABLE scores (school_id INTEGER REFERENCES schools(id), year INTEGER, subject TEXT,"
        " average REAL);", {"schools": schools, "teachers": teachers, "scores": scores})


TEMPLATES = (
    ("How many schools are in {county} county?", "",
     "SELECT COUNT(*) FROM schools WHERE county = '{county}'"),
    ("List the names of schools in {city}.", "",
     "SELECT name FROM schools WHERE city = '{city}'"),
    ("Which teachers teach {subject} at {school}?", "",
     "SELECT T1.name FROM teachers AS T1 INNER JOIN schools AS T2 ON T1.school_id = T2.id "
     "WHERE T1.subject = '{subject}' AND T2.name = '{school}'"),
    ("What was the average {subject} score of {scored} in {year}?", "average score refers to average",
     "SELECT T1.average FROM scores AS T1 INNER JOIN schools AS T2 ON T1.school_id = T2.id "
     "WHERE T2.name = '{scored}' AND T1.subject = '{subject}' AND T1.year = {year}"),
    ("How many charter schools are in {county} county?", "charter schools refers to charter = 1",
     "SELECT COUNT(*) FROM schools WHERE charter = 1 AND county = '{county}'"),
    ("Which schools have more than {enrollment} students?", "students refers to enrollment",
     "SELECT name FROM schools WHERE enrollment > {enrollment}"),
)


def pairs(db_path: Path, db_id: str, count: int, seed: int) -> list[dict]:
    """`count` BIRD records (question, evidence, SQL, db_id) cycling through the templates."""
    db = sqlite3.connect(db_path)
    try:
        schools = db.execute("SELECT name, county, city, enrollment FROM schools").fetchall()
        taught = db.execute("SELECT DISTINCT T1.subject, T2.name FROM teachers AS T1 "
                            "JOIN schools AS T2 ON T1.school_id = T2.id ORDER BY 2, 1").fetchall()
        scored = [row[0] for row in db.execute("SELECT name FROM schools WHERE id <= 20 ORDER BY id")]
    finally:
        db.close()
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        question, evidence, sql = TEMPLATES[i % len(TEMPLATES)]
        school = schools[int(rng.integers(len(schools)))]
        subject, teacher_school = taught[int(rng.integers(len(taught)))]
        values = {"county": school[1], "city": school[2], "subject": subject, "school": teacher_school,
                  "scored": scored[int(rng.integers(len(scored)))], "year": int(rng.choice([2019, 2020, 2021])),
                  "enrollment": int(rng.integers(3, 23)) * 100}
        out.append({"question_id": i, "db_id": db_id, "question": question.format(**values),
                    "evidence": evidence, "SQL": sql.format(**values)})
    return out


def write_bird_files(root: Path, train_count: int = 36, dev_count: int = 12) -> dict[str, Path]:
    """train/train_databases/district_a and dev/dev_databases/district_b, with train.json (a JSON
    array) and dev.jsonl; returns the paths by name."""
    train_dbs, dev_dbs = root / "train" / "train_databases", root / "dev" / "dev_databases"
    train_db = make_school_db(train_dbs, "district_a", seed=1)
    dev_db = make_school_db(dev_dbs, "district_b", seed=2)
    train, dev = root / "train" / "train.json", root / "dev" / "dev.jsonl"
    train.write_text(json.dumps(pairs(train_db, "district_a", train_count, seed=3), indent=1), encoding="utf-8")
    dev.write_text("".join(json.dumps(row) + "\n" for row in pairs(dev_db, "district_b", dev_count, seed=4)),
                   encoding="utf-8")
    return {"train": train, "dev": dev, "train_dbs": train_dbs, "dev_dbs": dev_dbs,
            "train_db": train_db, "dev_db": dev_db}
