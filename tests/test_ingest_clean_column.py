"""The column cleaner ingest runs at corpus scale equals `clean_text`, value for value."""
import re
import unicodedata

import numpy as np
import pyarrow as pa

from stages.text import clean_column, clean_text

SPACES = [chr(c) for c in range(0x110000) if re.fullmatch(r"\s", chr(c))]
CONTROLS = [chr(c) for c in range(32)] + ["\x7f", "\x85", "\u200b", "\u200d", "\ufeff", "\u2066"]
MARKS = ["\u0300", "\u0301", "\u0308", "\u0316", "\u0323", "\u031b", "\u0345", "\u093c", "\u094d", "\u05b0",
         "\u0651", "\u064e", "\u3099", "\u309a", "\u0cd5", "\u0f71", "\u0f72", "\u1dc0", "\U0001d165", "\U0001d16e"]
LETTERS = ["a", "e", "o", "u", "A", "Z", "ß", "İ", "ﬁ", "Å", "Ω", "\u212b", "\u2126", "\u0344", "\u0958", "\u0928",
           "क", "ि", "ो", "ह", "\u0cbf", "\u0cc6", "\u0f40", "\u1100", "\u1161", "\u11a8", "\uac00", "가", "中", "文",
           "\u3046", "\u304b", "\u05d0", "\u05e9", "\u0627", "\u0644", "\u200f", "\u202e", "😀", "\U0002f800", "x", "1"]


def fuzz_strings(n: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    pools = [LETTERS, MARKS, SPACES, CONTROLS, [" "]]
    weights = np.array([0.45, 0.2, 0.15, 0.1, 0.1])
    out = []
    for _ in range(n):
        kinds = rng.choice(len(pools), size=int(rng.integers(0, 14)), p=weights)
        out.append("".join(pools[k][rng.integers(len(pools[k]))] for k in kinds))
    return out


def test_python_classes_match_re_and_strip():
    assert SPACES == [c for c in map(chr, range(0x110000)) if c.isspace()]
    assert "".join(SPACES).strip() == ""


def test_clean_column_equals_clean_text_on_fuzz_corpus():
    values = fuzz_strings(20_000, 0) + ["  Cafe\u0301  ", "\u1100\u1161\u11a8", "a\u0316\u0301", "a\u0301\u0316",
                                        "\u0928\u093c", "e\u0301\u0301", "", " ", None]
    got = clean_column(pa.array(values, pa.string())).to_pylist()
    want = [None if v is None else clean_text(v) for v in values]
    mismatched = [(v, g, w) for v, g, w in zip(values, got, want) if g != w]
    assert not mismatched, mismatched[:5]
    assert sum(v is not None and unicodedata.normalize("NFC", v) != v for v in values) > 1000  # NFC was exercised


def test_nfc_never_acts_across_a_space():
    """The premise of `nfc_by_word`: U+0020 is a starter that decomposes to itself and is in no
    canonical composition pair, so reordering and composition both stop at it."""
    assert unicodedata.combining(" ") == 0 and unicodedata.decomposition(" ") == ""
    pairs = [d.split() for d in map(unicodedata.decomposition, map(chr, range(0x110000))) if d and d[0] != "<"]
    assert not [p for p in pairs if "0020" in p]
    for value in ["e \u0301", "\u0301 e", "\u1100 \u1161", "\u0928 \u093c", "a\u0316 \u0301", "\u0f71 \u0f72"]:
        assert unicodedata.normalize("NFC", value) == " ".join(unicodedata.normalize("NFC", w) for w in value.split(" "))


def test_clean_column_normalises_each_distinct_word_once(monkeypatch):
    """Values that repeat words (as a corpus does) cost one NFC per distinct word, not per value."""
    import stages.text

    stages.text._cleaning_patterns()  # built once, before counting
    calls = []
    real = unicodedata.normalize
    monkeypatch.setattr(stages.text.unicodedata, "normalize", lambda form, s: calls.append(s) or real(form, s))
    words = ["\u0921\u093c\u093e", "\u091c\u093c\u0930\u0942\u0930", "\u092c\u0921\u093c\u093e"]
    values = [" ".join(words[(i + k) % 3] for k in range(2 + i % 5)) for i in range(1000)]
    got = clean_column(pa.array(values, pa.string())).to_pylist()
    monkeypatch.undo()
    assert got == [clean_text(v) for v in values]
    assert len(calls) <= len(words)
