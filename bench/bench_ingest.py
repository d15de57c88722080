"""Ingest at corpus scale: ictrain's streaming ingest against a polars lazy reference.

    python bench/bench_ingest.py --rows 10000000 --pool-size 50000

Generates an en-hi-like Parquet corpus in code (Zipf-distributed English and Devanagari words,
5-25 a sentence; planted exact duplicates, duplicates that only match after white-space folding,
and empty sides), a test and an OOD test file (half of the test sources copied from the corpus),
then runs, each in its own subprocess and back to back: ictrain's `Ingest` stage, and the same
job in polars' lazy API (NFC, control characters and white space, empty sides dropped, exact
dedupe keeping the first row, the same seeded sample, test-overlap removal), collected by the
in-memory engine (`collect()`: the reference) and by the streaming engine
(`collect(engine="streaming")`: a second reference). Prints wall time and peak RSS (the child's
ru_maxrss) of each, the ratios to the reference and the load average, and checks that all three
dropped the same rows and kept the same pool. Targets: ictrain peak RSS <= 2 GiB at 10M rows,
wall time <= the reference's.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHUNK_ROWS = 1_000_000


NUKTA, VIRAMA = "\u093c", "\u094d"
NUKTA_LETTERS = "कखगजडढफय"  # the consonants Hindi writes with a nukta (क़ ख़ ग़ ज़ ड़ ढ़ फ़ य़)
NUKTA_RATE, VIRAMA_RATE = 0.07, 0.06  # of those letters; of letters without a vowel sign


def vocabulary(rng: np.random.Generator, size: int, letters: list[str], marks: list[str]):
    """`size` distinct-ish words of 2-9 letters, each letter optionally followed by a mark. With
    marks (Devanagari), a nukta follows 7% of the nukta consonants (ड़ in बड़ा, ज़ in ज़रूर; about
    1.5% of letters, in some 8% of words, as in running Hindi text) and a virama 6% of the letters
    without a vowel sign (conjuncts). A nukta is NFC_QC=Maybe, so those values take the cleaner's
    per-value NFC path, as real Hindi does."""
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = rng.integers(2, 10, size=size)
    picks = rng.integers(0, len(letters), size=int(lengths.sum()))
    chars = pa.array(letters).take(pa.array(picks))
    if marks:
        can_nukta = np.isin(np.array(letters, dtype=object)[picks], list(NUKTA_LETTERS))
        nukta = can_nukta & (rng.random(len(picks)) < NUKTA_RATE)
        chars = pc.if_else(pa.array(nukta), pc.binary_join_element_wise(chars, NUKTA, ""), chars)
        with_mark = rng.random(len(picks)) < 0.4
        mark = pa.array(marks).take(pa.array(rng.integers(0, len(marks), size=len(picks))))
        virama = ~with_mark & (rng.random(len(picks)) < VIRAMA_RATE)
        mark = pc.if_else(pa.array(virama), VIRAMA, mark)
        chars = pc.if_else(pa.array(with_mark | virama), pc.binary_join_element_wise(chars, mark, ""), chars)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int32)
    return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), chars), "")


def zipf_table(size: int) -> np.ndarray:
    """Word ranks at 2^20 equally likely points of the Zipf CDF (weight of rank r: r^-1.1): a
    table lookup per word instead of a binary search."""
    cdf = np.cumsum(1.0 / np.arange(1, size + 1) ** 1.1)
    return np.searchsorted(cdf, (np.arange(1 << 20) + 0.5) / (1 << 20) * cdf[-1]).astype(np.int64)


def sentences(rng: np.random.Generator, vocab, n: int):
    import pyarrow as pa
    import pyarrow.compute as pc

    lengths = rng.integers(5, 26, size=n)
    ranks = zipf_table(len(vocab))[rng.integers(0, 1 << 20, size=int(lengths.sum()))]
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    words = vocab.take(pa.array(ranks))
    return pc.binary_join(pa.LargeListArray.from_arrays(pa.array(offsets), words), " ")


def plant(rng: np.random.Generator, source, target):
    """Copy 4% of rows over later rows (half with extra white space: duplicates only once cleaned),
    and blank one side of 0.4%."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(source)
    take = np.arange(n)
    dest = rng.choice(n - 1, size=n // 25, replace=False) + 1
    take[dest] = (rng.random(len(dest)) * dest).astype(np.int64)
    source, target = source.take(pa.array(take)), target.take(pa.array(take))
    spaced, blank = np.zeros(n, bool), rng.choice(n, size=n // 250, replace=False)
    spaced[dest[: len(dest) // 2]] = True
    source = pc.if_else(pa.array(spaced), pc.binary_join_element_wise("", source, "  ", ""), source)
    blank_source, blank_target = np.zeros(n, bool), np.zeros(n, bool)
    blank_source[blank[::2]], blank_target[blank[1::2]] = True, True
    return (pc.if_else(pa.array(blank_source), "", source).cast(pa.large_string()),
            pc.if_else(pa.array(blank_target), "   ", target).cast(pa.large_string()))


def make_corpus(folder: Path, rows: int, seed: int) -> dict[str, Path]:
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    english = vocabulary(rng, 60_000, [chr(c) for c in range(97, 123)], [])
    hindi = vocabulary(rng, 60_000, [chr(c) for c in range(0x915, 0x93A)], [chr(c) for c in range(0x93E, 0x94D)])
    paths = {"train": folder / "big.parquet", "test": folder / "t.tsv", "test_ood": folder / "t2.tsv"}
    schema = pa.schema([("source", pa.large_string()), ("target", pa.large_string())])
    kept_sources = []
    with pq.ParquetWriter(paths["train"], schema) as writer:
        for start in range(0, rows, CHUNK_ROWS):
            n = min(CHUNK_ROWS, rows - start)
            source, target = plant(rng, sentences(rng, english, n), sentences(rng, hindi, n))
            writer.write_table(pa.table({"source": source, "target": target}, schema=schema))
            kept_sources.extend(source.slice(0, 1200).to_pylist())
    for split, n in (("test", 1012), ("test_ood", 500)):
        fresh = sentences(rng, english, n).to_pylist()
        src = [kept_sources[i] if split == "test" and i % 2 else fresh[i] for i in range(n)]
        tgt = sentences(rng, hindi, n).to_pylist()
        paths[split].write_text("source\ttarget\n" + "".join(f"{s.strip()}\t{t}\n" for s, t in zip(src, tgt)),
                                encoding="utf-8")
    return paths


def run_ictrain(folder: Path, pool_size: int, seed: int, rows: int = 0) -> dict:
    """Child: ictrain's ingest stage on the generated files."""
    sys.path.insert(0, str(ROOT))
    from pipeline.tasks import load_task
    from stages.base import StageStats
    from stages.ingest.stage import Ingest

    task = load_task("en-hi").model_copy(update={"pool_size": pool_size})
    overrides = {split: str(path) for split, path in json.loads((folder / "paths.json").read_text()).items()}
    stats = StageStats()
    started = time.perf_counter()
    stage = Ingest(task, seed, overrides, scratch_dir=folder)
    out = stage.run({}, stats)
    wall = time.perf_counter() - started
    _save_pool(folder / "pool-ictrain.parquet", out["pool"].select(["source", "target"]))
    rows_read = sum(counts["rows_read"] for counts in stage.read_counts.values())
    return {"wall_s": wall, "dropped": dict(stats.dropped), "pool": out["pool"].num_rows, "rows_read": rows_read}


def run_reference(folder: Path, pool_size: int, seed: int, rows: int = 0, engine: str = "auto") -> dict:
    """Child: the same job in polars' lazy engine; `collect()` (the in-memory engine, which holds
    every cleaned string at once) or, with engine="streaming", polars' streaming engine."""
    import polars as pl

    paths = json.loads((folder / "paths.json").read_text())
    started = time.perf_counter()

    def clean(column: str) -> pl.Expr:
        return (pl.col(column).str.normalize("NFC").str.replace_all(r"[\x00-\x08\x0b\x0c\x0e-\x1f]", "")
                .str.replace_all(r"\s+", " ").str.strip_chars())

    def split(frame: pl.LazyFrame) -> pl.DataFrame:
        cleaned = frame.select(clean("source"), clean("target"))
        usable = cleaned.filter((pl.col("source").str.len_bytes() > 0) & (pl.col("target").str.len_bytes() > 0))
        return usable.unique(keep="first", maintain_order=True).collect(engine=engine)

    train = split(pl.scan_parquet(paths["train"]))
    tests = [split(pl.scan_csv(paths[s], separator="\t", quote_char=None)) for s in ("test", "test_ood")]
    rng = np.random.default_rng([seed, 11])
    sampled = []
    for frame, limit in ((train, pool_size), (tests[0], 1012), (tests[1], 500)):
        if frame.height > limit:
            frame = frame[np.sort(rng.choice(frame.height, size=limit, replace=False))]
        sampled.append(frame)
    keys = {s.casefold() for frame in sampled[1:] for s in frame["source"].to_list()}
    pool = sampled[0].filter(pl.Series([s.casefold() not in keys for s in sampled[0]["source"].to_list()]))
    wall = time.perf_counter() - started
    _save_pool(folder / f"pool-{'reference' if engine == 'auto' else engine}.parquet", pool.to_arrow())
    return {"wall_s": wall, "distinct_usable": train.height + tests[0].height + tests[1].height, "pool": pool.height}


def _save_pool(path: Path, table) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(table.cast(pa.schema([("source", pa.large_string()), ("target", pa.large_string())])), path)


def child(role: str, folder: Path, args) -> dict:
    """Run one side in a fresh interpreter; its wall time (inside) and peak RSS (wait4)."""
    proc = subprocess.Popen([sys.executable, __file__, "--child", role, "--dir", str(folder), "--rows", str(args.rows),
                             "--pool-size", str(args.pool_size), "--seed", str(args.seed)], stdout=subprocess.PIPE,
                            cwd=ROOT)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{role} child failed ({proc.returncode})")
    return {**json.loads(out), "peak_rss_gib": usage.ru_maxrss / 2**20}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--pool-size", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dir", type=Path, help="work folder (default: a temp folder, deleted after)")
    parser.add_argument("--child", choices=["generate", "ictrain", "reference", "streaming"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run = {"generate": generate, "ictrain": run_ictrain, "reference": run_reference,
               "streaming": lambda *a: run_reference(*a, engine="streaming")}[args.child]
        print(json.dumps({**run(args.dir, args.pool_size, args.seed, args.rows), "vm_hwm_gib": _vm_hwm_gib()}))
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        folder = Path(tmp)
        made = child("generate", folder, args)  # in a child too: a parent holding the corpus would lend
        print(f"corpus: {args.rows:,} rows, {made['mib']:.0f} MiB Parquet, generated in {made['wall_s']:.1f} s; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)  # its peak RSS to every child it forks
        report(args, folder)


def generate(folder: Path, pool_size: int, seed: int, rows: int) -> dict:
    """Child: write the corpus and the test files."""
    started = time.perf_counter()
    paths = make_corpus(folder, rows, seed)
    (folder / "paths.json").write_text(json.dumps({k: str(v) for k, v in paths.items()}))
    return {"wall_s": time.perf_counter() - started, "mib": paths["train"].stat().st_size / 2**20}


def _vm_hwm_gib() -> float | None:
    """The child's own peak RSS as the kernel counts it since exec (VmHWM), a check on ru_maxrss."""
    try:
        status = Path("/proc/self/status").read_text()
    except OSError:
        return None
    return next((int(line.split()[1]) / 2**20 for line in status.splitlines() if line.startswith("VmHWM:")), None)


def report(args, folder: Path) -> None:
    import pyarrow.parquet as pq

    results = {}
    for role in ("reference", "streaming", "ictrain"):
        results[role] = child(role, folder, args)
        print(f"{role:9s}: wall {results[role]['wall_s']:7.1f} s  peak RSS {results[role]['peak_rss_gib']:5.2f} GiB "
              f"(VmHWM {results[role]['vm_hwm_gib']:.2f})  load average {os.getloadavg()[0]:.2f}", flush=True)
    ours, ref = results["ictrain"], results["reference"]
    for role in ("ictrain", "streaming"):
        print(f"ratio {role}/reference: wall {results[role]['wall_s'] / ref['wall_s']:.2f}x, "
              f"peak RSS {results[role]['peak_rss_gib'] / ref['peak_rss_gib']:.2f}x")
    print(f"ictrain dropped: {json.dumps(ours['dropped'], sort_keys=True)}")
    same = pq.read_table(folder / "pool-ictrain.parquet").equals(pq.read_table(folder / "pool-reference.parquet"))
    usable = ours["rows_read"] - sum(n for why, n in ours["dropped"].items() if why != "pool row also in a test set")
    print(f"same pool as the reference: {same} ({ours['pool']:,} rows); same distinct usable rows: "
          f"{usable == ref['distinct_usable']} ({usable:,} in all splits)")
    streamed = pq.read_table(folder / "pool-streaming.parquet").equals(pq.read_table(folder / "pool-reference.parquet"))
    print(f"streaming engine: same pool as the in-memory reference: {streamed}")
    same = same and usable == ref["distinct_usable"] and streamed
    print(f"targets at this size: peak RSS <= 2 GiB {'met' if ours['peak_rss_gib'] <= 2 else 'MISSED'}, "
          f"wall <= reference {'met' if ours['wall_s'] <= ref['wall_s'] else 'MISSED'}")
    if not same:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
