"""The ingest bench's generated Hindi is realistic where it matters for speed: real Hindi has
nukta letters (ड़ in बड़ा, ज़ in ज़रूर) in most sentences, and those values take the cleaner's
per-value NFC path; a bench without them measured only the fast path."""
import importlib.util
from pathlib import Path

import numpy as np
import polars as pl

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_ingest", ROOT / "bench" / "bench_ingest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_hindi_has_nukta_and_virama_and_takes_the_slow_nfc_path():
    from stages.text import _cleaning_patterns

    bench = _bench()
    rng = np.random.default_rng(0)
    hindi = bench.vocabulary(rng, 5000, [chr(c) for c in range(0x915, 0x93A)], [chr(c) for c in range(0x93E, 0x94D)])
    words = hindi.to_pylist()
    nukta = np.mean(["\u093c" in w for w in words])
    virama = np.mean(["\u094d" in w for w in words])
    assert 0.03 < nukta < 0.2 and 0.05 < virama < 0.4, (nukta, virama)
    targets = pl.Series(bench.sentences(rng, hindi, 2000).to_pylist())
    slow = targets.str.contains(_cleaning_patterns()[0]).mean()
    assert 0.3 < slow < 0.9, slow
