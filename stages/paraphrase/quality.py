"""The quality filter every paraphrase backend applies before handing paraphrases to the build.

A bad paraphrase is worse than none: the build falls back to a `near` example for a target with
no paraphrase, but a paraphrase that says something else teaches the model to copy wrong labels.
Every drop is counted by reason so a user can see what the model got wrong. The language check is
a dependency-free heuristic (dominant script, then common function words), tuned to drop only
clear cases.
"""
from __future__ import annotations

import json
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from typing import Any, Callable, Sequence

import numpy as np

from stages.paraphrase.slots import missing_slot_values, parse_request
from stages.text import normalize_text

QUALITY_VERSION = 1  # bump when a change here alters which paraphrases are kept

_WORDS = re.compile(r"[^\W\d_]+", re.UNICODE)
_FUNCTION_WORDS: dict[str, frozenset[str]] = {
    "en": frozenset("the of and to is are was were with for this that these those from by have has had "
                    "not be been which who what would should could there their they it its at on".split()),
    "de": frozenset("der das und ist nicht mit den dem des ein eine einen sich auf für von zu wir sie "
                    "werden wurde sind auch noch nur aber oder wenn dass über bei".split()),
    "fr": frozenset("le la les et est des une un du dans pour pas que qui sur avec nous vous sont au aux "
                    "ce cette ces mais ou été être".split()),
    "es": frozenset("el la los las y es del una un en por para con que se su sus pero como más está son "
                    "fue este esta estos".split()),
    "it": frozenset("il lo la gli le e è di del della una un per con che non sono nel alla ma questo questa "
                    "anche".split()),
    "pt": frozenset("o os a as e é do da dos das um uma em para com que não são no na mas este esta "
                    "também".split()),
    "nl": frozenset("de het een en is van niet met voor zijn op dat die wij ze maar ook naar door "
                    "worden".split()),
    "lt": frozenset("ir yra kad su į iš ne kaip bet tai jis ji mes jie buvo bus apie už nuo dėl taip "
                    "šis ši".split()),
}
# Words that are common in English too are useless as evidence for another language.
_FUNCTION_WORDS = {lang: words - _FUNCTION_WORDS["en"] if lang != "en" else words
                   for lang, words in _FUNCTION_WORDS.items()}

_ASCII_LETTER = re.compile(r"[A-Za-z]")
_ASCII_NON_LETTERS_TO_SPACE = bytes(c if 97 <= c <= 122 else 32 for c in range(256))
_SQL_STRING = re.compile(r"'(?:[^']|'')*'")
_SQL_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.])")
SLOT_VALUE_MISSING = "slot value missing"


_WORD_LANGS: dict[str, tuple[str, ...]] = {}
for _lang, _vocab in _FUNCTION_WORDS.items():
    for _word in _vocab:
        _WORD_LANGS[_word] = _WORD_LANGS.get(_word, ()) + (_lang,)


@lru_cache(maxsize=65536)
def _script_of(char: str) -> str:
    name = unicodedata.name(char, "")
    return name.split(" ")[0] if name else "UNKNOWN"


def dominant_script(text: str) -> str | None:
    """The Unicode script (LATIN, CYRILLIC, DEVANAGARI, ...) of most letters; None without letters."""
    if text.isascii():
        return "LATIN" if _ASCII_LETTER.search(text) else None
    scripts: Counter = Counter(_script_of(c) for c in text if c.isalpha())
    return scripts.most_common(1)[0][0] if scripts else None


def guess_latin_language(text: str, words: list[str] | None = None) -> str | None:
    """The language whose function words clearly dominate, or None when the evidence is thin.
    `words` (case-folded) may be passed when the caller already split the text."""
    words = _casefolded_words(text) if words is None else words
    hits: dict[str, int] = {}
    for word in words:
        for lang in _WORD_LANGS.get(word, ()):
            hits[lang] = hits.get(lang, 0) + 1
    if not hits:
        return None
    best = max(hits, key=hits.__getitem__)
    runner_up = max((count for lang, count in hits.items() if lang != best), default=0)
    return best if hits[best] >= 2 and hits[best] >= 2 * runner_up else None


@lru_cache(maxsize=4096)
def language_profile(text: str) -> tuple[str | None, str | None]:
    """(dominant script, guessed Latin-script language); cached since a source meets many candidates."""
    script = dominant_script(text)
    return script, (guess_latin_language(text) if script == "LATIN" else None)


def different_language(source: str, paraphrase: str, words: list[str] | None = None) -> bool:
    source_script, source_lang = language_profile(source)
    para_script = dominant_script(paraphrase)
    if source_script is None or para_script is None:
        return False
    if source_script != para_script:
        return True
    if source_script != "LATIN" or source_lang is None:
        return False
    words = _casefolded_words(paraphrase) if words is None else words
    if len(_FUNCTION_WORDS[source_lang].intersection(words)) >= 2:
        return False  # two different function words of the source language: same language
    para_lang = guess_latin_language(paraphrase, words)
    return para_lang is not None and para_lang != source_lang


def sql_skeleton(sql: str) -> str:
    """The query with every literal constant masked: what an SQL paraphrase must keep unchanged."""
    masked = _SQL_NUMBER.sub("?", _SQL_STRING.sub("?", sql))
    return re.sub(r"\s+", " ", masked).strip().casefold()


def _view(text: str, prompt: str) -> tuple[str, str | None]:
    """(the natural-language part to judge, the SQL or None)."""
    if prompt != "sql":
        return text, None
    try:
        data = json.loads(text)
        return str(data.get("question", "")), str(data.get("sql", ""))
    except (ValueError, AttributeError):
        return "", None


def _squash(sql: str | None) -> str:
    return re.sub(r"\s+", " ", sql).strip().casefold() if sql else ""


def _casefolded_words(text: str) -> list[str]:
    if text.isascii():  # a byte table is ~8x faster than the Unicode word regex
        return text.casefold().encode("ascii").translate(_ASCII_NON_LETTERS_TO_SPACE).decode("ascii").split()
    return _WORDS.findall(text.casefold())


def _comparable(text: str) -> tuple[str, list[str]]:
    """Normalised words joined (so "Hello." and "hello" compare equal), and the words."""
    if text.isascii():  # ASCII needs no Unicode normalisation; letters only, so spacing is moot
        words = _casefolded_words(text)
        return (" ".join(words) or " ".join(text.split()).casefold()), words
    normal = normalize_text(text)
    words = _casefolded_words(normal)
    return (" ".join(words) or normal), words


def _first_reason(source: tuple[str, str | None, str], candidate: str, seen: set[str], prompt: str) -> str | None:
    source_text, source_sql, source_key = source
    text, sql = _view(candidate, prompt)
    if not text.strip() or (prompt == "sql" and not _squash(sql)):
        return "empty"
    comparable, words = _comparable(text)
    key = comparable + "\x00" + _squash(sql)
    if key == source_key:
        return "identical to source"
    if key in seen:
        return "duplicate"
    seen.add(key)
    if different_language(source_text, text, words):
        return "different language"
    if sql is not None and source_sql is not None and sql_skeleton(sql) != sql_skeleton(source_sql):
        return "sql changes more than literals"
    return None


def verdicts(source: str, candidates: Sequence[str], prompt: str = "mt") -> list[str | None]:
    """The checks that need no embedding: a drop reason (or None: keep) per candidate. A pure
    function of its arguments and QUALITY_VERSION, so backends store it next to a cached answer
    and a cached rerun need not judge 250k paraphrases again. A semantic-parsing source is a
    request (`slots.encode_request`): its paraphrases are plain utterances that must also keep
    every slot value of the gold logical form."""
    if prompt == "semparse":
        utterance, keep = parse_request(source)
        reasons = verdicts(utterance, candidates, "mt")
        return [reason or (SLOT_VALUE_MISSING if missing_slot_values(utterance, candidate, keep) else None)
                for reason, candidate in zip(reasons, candidates)]
    source_text, source_sql = _view(source, prompt)
    source_view = (source_text, source_sql, _comparable(source_text)[0] + "\x00" + _squash(source_sql))
    seen: set[str] = set()
    return [_first_reason(source_view, candidate, seen, prompt) for candidate in candidates]


def filter_paraphrases(sources: Sequence[str], candidates: Sequence[Sequence[str]], n: int, *,
                       prompt: str = "mt", embed: Callable[[list[str]], Any] | None = None,
                       cos_band: Sequence[float] | None = None,
                       judged: Sequence[Sequence[str | None] | None] | None = None,
                       ) -> tuple[list[list[str]], Counter]:
    """Keep up to n good paraphrases per source; return them and the drop counts by reason.

    `judged` may hold stored `verdicts` per source (None: judge now). `embed` (texts ->
    L2-normalised rows) enables the cosine band: too far means the meaning drifted, too close
    means a near copy. Without `embed` that check is skipped."""
    dropped: Counter = Counter()
    survivors: list[list[str]] = []
    for i, (source, found) in enumerate(zip(sources, candidates)):
        stored = judged[i] if judged is not None else None
        reasons = stored if stored is not None and len(stored) == len(found) else verdicts(source, found, prompt)
        dropped.update(reason for reason in reasons if reason)
        survivors.append([candidate for candidate, reason in zip(found, reasons) if reason is None])
    if embed is not None and cos_band is not None:
        survivors = _cosine_band(sources, survivors, prompt, embed, cos_band, dropped)
    out = []
    for kept in survivors:
        if len(kept) > n:
            dropped["beyond n"] += len(kept) - n
        out.append(kept[:n])
    return out, dropped


def _cosine_band(sources: Sequence[str], survivors: list[list[str]], prompt: str,
                 embed: Callable[[list[str]], Any], cos_band: Sequence[float], dropped: Counter) -> list[list[str]]:
    low, high = float(cos_band[0]), float(cos_band[1])
    texts = []
    for source, kept in zip(sources, survivors):
        if kept:
            texts.append(parse_request(source)[0] if prompt == "semparse" else _view(source, prompt)[0])
            texts.extend(_view(k, prompt)[0] for k in kept)
    if not texts:
        return survivors
    vectors = np.asarray(embed(texts), dtype=np.float32)
    out, row = [], 0
    for kept in survivors:
        if not kept:
            out.append(kept)
            continue
        source_vec, para_vecs = vectors[row], vectors[row + 1: row + 1 + len(kept)]
        row += 1 + len(kept)
        cosines = para_vecs @ source_vec
        keep = []
        for paraphrase, cosine in zip(kept, cosines):
            if cosine < low:
                dropped["cosine below band"] += 1
            elif cosine > high:
                dropped["cosine above band"] += 1
            else:
                keep.append(paraphrase)
        out.append(keep)
    return out
