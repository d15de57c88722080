"""Slot values of MTOP logical forms, and the check that a paraphrase keeps every one of them.

An MTOP logical form (the decoupled form) nests intents and slots in brackets,
`[IN:GET_WEATHER [SL:LOCATION Paris ] [SL:DATE_TIME tomorrow ] ]`; every word inside a slot is
copied from the utterance. A paraphrase of the utterance keeps the gold logical form only if it
still contains each of those words, unchanged: that is what the check enforces.

A slot value is a maximal run of words directly inside one `[SL:...]`: a slot that holds a
nested intent (`[SL:CONTACT [IN:GET_CONTACT [SL:TYPE_RELATION mom ] ] ]`) contributes the runs of
its children, not one span joining them, because the words of nested slots need not be adjacent
in the utterance. Brackets need no surrounding spaces; a malformed form is read leniently (a stray
`]` is ignored, an unclosed slot ends with the text), so a broken label never crashes a build.

Presence is judged on word and punctuation tokens, case-sensitive, after Unicode NFC: the
tokenised `Avery M .` of a logical form is present in `Call Avery M. now`, `Paris` is not present
in `Parisian`. A value that is not contiguous in the source utterance either (German separable
verbs: `Jody treffen` in `Jody morgen Mittag zu treffen`) must appear with its words in the same
order, as in the source.
"""
from __future__ import annotations

import json
import re
import unicodedata
from functools import lru_cache

from schemas.errors import UserError

_LF_TOKEN = re.compile(r"\[(?:IN|SL):[^\s\[\]]+|\]|[^\s\[\]]+")
_WORD_TOKEN = re.compile(r"\w+|[^\w\s]")


def slot_values(logical_form: str) -> list[str]:
    """Every slot value of the logical form, in order, each a space-joined run of its tokens."""
    values: list[str] = []
    stack: list[str] = []  # "SL" / "IN" per open bracket
    run: list[str] = []

    def close_run() -> None:
        if run:
            values.append(" ".join(run))
            run.clear()

    for token in _LF_TOKEN.findall(logical_form):
        if token.startswith("["):
            close_run()
            stack.append(token[1:3])
        elif token == "]":
            close_run()
            if stack:
                stack.pop()
        elif stack and stack[-1] == "SL":
            run.append(token)
    close_run()
    return values


@lru_cache(maxsize=65536)
def _tokens(text: str) -> tuple[str, ...]:
    return tuple(_WORD_TOKEN.findall(unicodedata.normalize("NFC", text)))


def _contiguous(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    width = len(needle)
    return any(haystack[i:i + width] == needle for i in range(len(haystack) - width + 1))


def _in_order(haystack: tuple[str, ...], needle: tuple[str, ...]) -> bool:
    remaining = iter(haystack)
    return all(token in remaining for token in needle)


def missing_slot_values(source: str, paraphrase: str, values: list[str]) -> list[str]:
    """The values the paraphrase lost: absent, or split where the source keeps them together."""
    source_tokens, para_tokens = _tokens(source), _tokens(paraphrase)
    missing = []
    for value in values:
        needle = _tokens(value)
        if not needle:
            continue
        together = _contiguous(source_tokens, needle) or not _in_order(source_tokens, needle)
        found = _contiguous(para_tokens, needle) if together else _in_order(para_tokens, needle)
        if not found:
            missing.append(value)
    return missing


def encode_request(utterance: str, logical_forms: list[str]) -> str:
    """What a semantic-parsing paraphrase backend receives for one utterance: a JSON object with
    the utterance and the slot values to keep (of every logical form the utterance has)."""
    keep = list(dict.fromkeys(value for form in logical_forms for value in slot_values(form)))
    return json.dumps({"utterance": utterance, "keep": keep}, ensure_ascii=False, sort_keys=True)


def parse_request(request: str) -> tuple[str, list[str]]:
    """(utterance, slot values to keep) of a request made by `encode_request`."""
    try:
        data = json.loads(request)
        return str(data["utterance"]), [str(value) for value in data["keep"]]
    except (ValueError, KeyError, TypeError):
        raise UserError(f"semantic-parsing paraphrase source {request[:60]!r}: expected a JSON object with "
                        "'utterance' and a 'keep' list; the paraphrase stage makes these, with "
                        "stages.paraphrase.slots.encode_request") from None
