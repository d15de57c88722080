"""The databases of an SQL build: where each `db_id` lives, its schema (read once) and the
paraphrase validator, shared by the paraphrase and assemble stages.

BIRD unzips its train and dev databases into different folders (`train/train_databases/` and
`dev/dev_databases/`, each holding `<db_id>/<db_id>.sqlite`), so a build takes several folders
(`--db-dir` repeated) and looks a `db_id` up in each, in the order given; the first folder that
has it wins.
"""
from __future__ import annotations

from pathlib import Path

from schemas.errors import UserError
from stages.sql.schema import DatabaseSchema, database_fingerprint, read_schema
from stages.sql.validate import TIMEOUT_S, SqlValidator


def locate_databases(db_dirs: list[str], db_ids: set[str]) -> dict[str, Path]:
    """db_id -> database file, for every id; one UserError line for the first missing one."""
    from stages.sql.sandbox import database_path

    if not db_dirs:
        raise UserError("this SQL task needs its databases: pass --db-dir DIR, the folder holding "
                        "<db_id>/<db_id>.sqlite (repeat it for BIRD's train and dev database folders)")
    for folder in db_dirs:
        if not Path(folder).is_dir():
            raise UserError(f"--db-dir {folder}: no such folder; give the folder holding <db_id>/<db_id>.sqlite")
    found: dict[str, Path] = {}
    missing = []
    for db_id in sorted(db_ids):
        for folder in db_dirs:
            try:
                found[db_id] = Path(database_path(Path(folder), db_id))
                break
            except UserError:
                continue
        else:
            missing.append(db_id)
    if missing:
        where = " or ".join(str(Path(folder) / missing[0] / f"{missing[0]}.sqlite") for folder in db_dirs)
        more = f" ({len(missing) - 1} more database(s) missing too)" if len(missing) > 1 else ""
        raise UserError(f"database {missing[0]!r} not found: no {where}{more}; add the folder that holds it "
                        f"with --db-dir")
    return found


def fingerprints(paths: dict[str, Path]) -> dict[str, dict]:
    """db_id -> content fingerprint: what the version and the caches are keyed on (no path)."""
    return {db_id: database_fingerprint(path) for db_id, path in sorted(paths.items())}


class SqlDatabases:
    def __init__(self, paths: dict[str, Path], timeout_s: float = TIMEOUT_S):
        self.paths = paths
        self.validator = SqlValidator(paths, timeout_s)
        self._schemas: dict[str, DatabaseSchema] = {}

    def schema(self, db_id: str) -> DatabaseSchema:
        if db_id not in self._schemas:
            if db_id not in self.paths:
                raise UserError(f"database {db_id!r} is not among the build's databases; pass its folder with --db-dir")
            self._schemas[db_id] = read_schema(self.paths[db_id], db_id)
        return self._schemas[db_id]
