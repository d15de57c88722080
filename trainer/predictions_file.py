"""Reading outputs written by another inference stack (vLLM, an API, ...) for `--predictions`.

The file is JSONL, one `{"id": ..., "prediction": ...}` object per line, where `id` is the `id`
column of the version's eval split. Every check fails with one line naming the file, the line and
what to do, because the file comes from outside and a silent mismatch would score the wrong rows:
bad JSON, a record without `id`/`prediction`, an id or prediction that is not a string, an id given
twice, ids the eval split does not have, and eval rows left without a prediction. Predictions are
scored as given (not cut to their first line), so multi-line SQL is fine.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

from schemas.errors import UserError

SHOWN = 3
FORMAT = 'one {"id": ..., "prediction": ...} object per line'


def _named(ids: list[str]) -> str:
    more = f", ... ({len(ids) - SHOWN} more)" if len(ids) > SHOWN else ""
    return ", ".join(repr(i) for i in ids[:SHOWN]) + more


def _record(path: Path, number: int, line: str) -> tuple[str, str]:
    """The (id, prediction) of one line, or a one-line error naming the line."""
    where = f"{path}:{number}"
    try:
        record = json.loads(line)
    except json.JSONDecodeError as err:
        raise UserError(f"{where}: not valid JSON ({err.msg}); write {FORMAT}") from None
    if not isinstance(record, dict) or "id" not in record or "prediction" not in record:
        raise UserError(f"{where}: expected an object with \"id\" and \"prediction\"; write {FORMAT}")
    row_id, prediction = record["id"], record["prediction"]
    if not isinstance(row_id, str):
        raise UserError(f"{where}: id {row_id!r} is a {type(row_id).__name__}, not a string; use "
                        "the eval split's id column as it is")
    if not isinstance(prediction, str):
        raise UserError(f"{where}: the prediction of id {row_id!r} is a "
                        f"{type(prediction).__name__}, not a string; write the model's output "
                        "as a JSON string (\"\" for no answer)")
    return row_id, prediction


def read_predictions(path: str | Path) -> dict[str, str]:
    """id -> prediction, every line checked; blank lines are skipped."""
    path = Path(path)
    try:
        # "\n" only: splitlines() also splits on U+2028, U+0085, ... which json.dumps writes raw
        # inside strings (ensure_ascii=False); utf-8-sig drops a byte-order mark.
        lines = path.read_text(encoding="utf-8-sig").split("\n")
    except FileNotFoundError:
        raise UserError(f"--predictions {path}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"--predictions {path}: cannot be read as UTF-8 text ({err})") from None
    predictions: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        row_id, prediction = _record(path, number, line)
        if row_id in first_line:
            raise UserError(f"{path}:{number}: id {row_id!r} appears twice (first on line "
                            f"{first_line[row_id]}); keep one prediction per eval row")
        first_line[row_id] = number
        predictions[row_id] = prediction
    return predictions


def predictions_for_rows(path: str | Path, rows: list[dict[str, Any]],
                         eval_ids: Iterable[str], version: str) -> list[str]:
    """The predictions of `rows` in their order. Ids outside the eval split are an error; rows
    of the split outside `rows` (left out by --limit) may have predictions, which are ignored."""
    predictions = read_predictions(path)
    known = set(eval_ids)
    unknown = [row_id for row_id in predictions if row_id not in known]
    if unknown:
        raise UserError(f"--predictions {path}: {len(unknown)} ids are not in the eval split of "
                        f"version {version}: {_named(unknown)}; predict the rows of this "
                        "version's eval split (its id column)")
    missing = [row["id"] for row in rows if row["id"] not in predictions]
    if missing:
        raise UserError(f"--predictions {path}: {len(missing)} of {len(rows)} eval rows have no "
                        f"prediction: {_named(missing)}; predict every row, or pass --limit N "
                        "to score the first N items of each test set")
    return [predictions[row["id"]] for row in rows]
