"""Ingest's spill at 1M rows: uncompressed against lz4 and zstd Arrow IPC.

    python bench/bench_spill.py --rows 1000000

Writes 1M rows of the ingest bench's text (bench_ingest.py's generator) to a spill file in
65,536-row batches, then reads back a 50k sample as ingest does (`take_rows`); prints write and
read time, file size and the load average for each compression, twice over.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def spill_table(rows: int, seed: int):
    import pyarrow as pa

    sys.path.insert(0, str(ROOT))
    from bench.bench_ingest import sentences, vocabulary
    from stages.ingest.scan import ITEM_SCHEMA

    rng = np.random.default_rng(seed)
    english = vocabulary(rng, 60_000, [chr(c) for c in range(97, 123)], [])
    hindi = vocabulary(rng, 60_000, [chr(c) for c in range(0x915, 0x93A)], [chr(c) for c in range(0x93E, 0x94D)])
    return pa.table({"source": sentences(rng, english, rows).cast(pa.string()),
                     "target": sentences(rng, hindi, rows).cast(pa.string()),
                     "db_id": pa.array([""] * rows, pa.string())}, schema=ITEM_SCHEMA)


def main() -> None:
    import pyarrow.ipc as ipc

    from stages.ingest.scan import ITEM_SCHEMA, take_rows

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    table = spill_table(args.rows, 0)
    batches = table.to_batches(max_chunksize=1 << 16)
    positions = np.sort(np.random.default_rng(1).choice(args.rows, min(50_000, args.rows), replace=False))
    for compression in (None, "lz4", "zstd") * 2:
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "spill.arrow"
            started = time.perf_counter()
            with ipc.new_file(str(path), ITEM_SCHEMA, options=ipc.IpcWriteOptions(compression=compression)) as writer:
                for batch in batches:
                    writer.write_batch(batch)
            written = time.perf_counter()
            take_rows(path, positions)
            print(f"{compression or 'none':5s}: write {written - started:5.2f} s  read {time.perf_counter() - written:5.2f} s"
                  f"  {path.stat().st_size / 2**20:5.0f} MiB  load average {os.getloadavg()[0]:.2f}", flush=True)


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
