"""`python -m pipeline.xsemplr`: XSemPLR's MTOP files as the JSON Lines a build reads.

    python -m pipeline.xsemplr --lang de XSemPLR/dataset/mtop/train.json mtop-de-train.jsonl

XSemPLR stores MTOP as one JSON array per split, each record holding every language:
`{"id": ..., "question": {"de": utterance, ...}, "mr": {"slot_intent": {"de": logical form, ...}}}`.
This writes one `{"id", "source", "target"}` line per record for one language, in file order,
with the text exactly as XSemPLR has it (tokenised: `Ruf Avery M . an .`), since the slot values
of the logical forms are copies of those tokens. A record without the language is an error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from schemas.errors import UserError
from stages.base import write_text_atomically

LANGUAGES = ("en", "de", "es", "fr", "hi", "th")


def mtop_rows(records: Any, lang: str, origin: str) -> list[dict[str, str]]:
    """(id, utterance, logical form) of every record, for one language."""
    if not isinstance(records, list):
        raise UserError(f"{origin}: expected a JSON array of MTOP records (XSemPLR's dataset/mtop/*.json)")
    rows = []
    for number, record in enumerate(records, start=1):
        try:
            utterance, form = record["question"][lang], record["mr"]["slot_intent"][lang]
        except (KeyError, TypeError):
            raise UserError(f"{origin}: record {number} has no {lang!r} question and slot_intent; "
                            f"is this XSemPLR's MTOP file? (languages: {', '.join(LANGUAGES)})") from None
        rows.append({"id": str(record.get("id", number)), "source": str(utterance), "target": str(form)})
    return rows


def convert(source: Path, lang: str, output: Path) -> int:
    """Write the JSON Lines file (temp file, then rename); returns the number of rows."""
    try:
        records = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{source}: file not found; give XSemPLR's dataset/mtop/train.json, dev.json or test.json") \
            from None
    except (ValueError, UnicodeDecodeError) as err:
        raise UserError(f"{source}: not a JSON file ({err.__class__.__name__}); download it again") from None
    rows = mtop_rows(records, lang, source.name)
    try:
        write_text_atomically(output, "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows))
    except OSError as err:
        raise UserError(f"cannot write {output}: {err.strerror or err}; choose another output path") from None
    return len(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m pipeline.xsemplr", description=__doc__.split("\n")[0])
    parser.add_argument("--lang", required=True, choices=LANGUAGES, help="language to extract (required)")
    parser.add_argument("input", type=Path, help="an XSemPLR MTOP file, e.g. dataset/mtop/train.json")
    parser.add_argument("output", type=Path, help="the JSON Lines file to write (source, target, id)")
    args = parser.parse_args(argv)
    try:
        count = convert(args.input, args.lang, args.output)
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {count} rows ({args.lang}) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
