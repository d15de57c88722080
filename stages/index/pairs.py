"""Cleaning of appended pairs, by the rules the build's ingest applies to a pool row: text goes
through `clean_text`, and a pair with a missing, undecodable or (once cleaned) empty side is
rejected with the same reason ingest would give."""
from __future__ import annotations

from typing import Any

from stages.text import clean_text


def pair_problem(source: Any, target: Any) -> str | None:
    for side, value in (("source", source), ("target", target)):
        if value is None:
            return f"missing {side}"
        if not isinstance(value, str):
            return f"{side} is not text"
        if any("\udc80" <= ch <= "\udcff" for ch in value):
            return "undecodable bytes"
        if not clean_text(value):
            return f"empty {side}"
    return None


def clean_pairs(pairs: list[tuple[Any, Any]]) -> tuple[list[tuple[str, str]], list[dict]]:
    """(cleaned pairs, [{"item": position in `pairs`, "reason"}] for the rejected ones)."""
    kept, rejected = [], []
    for item, (source, target) in enumerate(pairs):
        reason = pair_problem(source, target)
        if reason:
            rejected.append({"item": item, "reason": reason})
        else:
            kept.append((clean_text(source), clean_text(target)))
    return kept, rejected
