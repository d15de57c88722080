"""Ingest: every file type, every reject reason, the test-overlap guard and whole-file errors."""
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from schemas.errors import UserError
from pipeline.tasks import load_task
from stages.base import StageStats
from stages.ingest.stage import Ingest


def _ingest(train, test, ood=None, pool_size=100):
    task = load_task("en-lt").model_copy(update={"pool_size": pool_size})
    ood = ood or _write_tsv(test.parent / "ood.tsv", [("Out of domain", "Ne iš srities")])
    stage = Ingest(task, seed=0, overrides={"train": str(train), "test": str(test), "test_ood": str(ood)})
    stats = StageStats()
    return stage.run({}, stats), stats


def _write_tsv(path, rows, header="source\ttarget"):
    path.write_bytes((header + "\n" + "".join(f"{s}\t{t}\n" for s, t in rows)).encode("utf-8"))
    return path


def test_tsv_cleaning_rejects_and_overlap(tmp_path):
    train = tmp_path / "train.tsv"
    body = ("source\ttarget\n"
            "Hello   world\tLabas pasauli\n"      # line 2: kept (white space folded)
            "Hello world\tLabas pasauli\n"        # line 3: exact duplicate after cleaning
            "\tTuščia\n"                          # line 4: empty source
            "Good day\t   \n"                     # line 5: empty target
            "Shared sentence\tBendras\n").encode()  # line 6: also in the test set
    train.write_bytes(body + b"Broken \xff bytes\tX\n" + "Cafe\u0301\tKavinė\n".encode())
    test = _write_tsv(tmp_path / "test.tsv", [("shared   SENTENCE", "Bendras"), ("Other", "Kitas")])
    out, stats = _ingest(train, test)
    pool = out["pool"].to_pylist()
    assert [r["source"] for r in pool] == ["Hello world", "Café"]  # NFC: e + combining acute -> é
    rejects = {(r["line"], r["reason"]) for r in out["rejects"].to_pylist()}
    assert rejects == {(4, "empty source"), (5, "empty target"), (7, "undecodable bytes")}
    assert all(r["file"] == train.name for r in out["rejects"].to_pylist())  # no machine path: rejects are published
    assert stats.dropped["exact duplicate"] == 1
    assert stats.dropped["pool row also in a test set"] == 1
    assert out["tests"].column("test_set").to_pylist() == ["id", "id", "ood"]


def test_csv_jsonl_and_parquet_read_alike(tmp_path):
    rows = [("One", "Vienas"), ("Two, with comma", "Du"), ("Three", "Trys")]
    csv_path = tmp_path / "train.csv"
    csv_path.write_text("source,target\n" + "".join(f'"{s}","{t}"\n' for s, t in rows), encoding="utf-8")
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("".join(json.dumps({"source": s, "target": t}) + "\n" for s, t in rows) + "{not json\n")
    parquet = tmp_path / "train.parquet"
    pq.write_table(pa.table({"source": [s for s, _ in rows], "target": [t for _, t in rows]}), parquet)
    test = _write_tsv(tmp_path / "test.tsv", [("Four", "Keturi")])
    pools = [_ingest(path, test)[0]["pool"].to_pylist() for path in (csv_path, jsonl, parquet)]
    assert pools[0] == pools[1] == pools[2]
    assert [r["source"] for r in pools[0]] == [s for s, _ in rows]
    rejects = _ingest(jsonl, test)[0]["rejects"].to_pylist()
    assert rejects == [{"file": jsonl.name, "line": 4, "reason": "unparsable row", "detail": "not valid JSON"}]


@pytest.mark.parametrize("content, message", [
    (b"", "file is empty"),
    (b"src\ttgt\nA\tB\n", "missing column(s) ['source', 'target']; found ['src', 'tgt']"),
])
def test_whole_file_problems_name_the_file(tmp_path, content, message):
    train = tmp_path / "train.tsv"
    train.write_bytes(content)
    test = _write_tsv(tmp_path / "test.tsv", [("A", "B")])
    with pytest.raises(UserError) as err:
        _ingest(train, test)
    assert str(train) in str(err.value) and message in str(err.value)


def test_all_rows_rejected_is_an_error(tmp_path):
    train = _write_tsv(tmp_path / "train.tsv", [("", "x"), ("y", "")])
    test = _write_tsv(tmp_path / "test.tsv", [("A", "B")])
    with pytest.raises(UserError, match="no usable training rows"):
        _ingest(train, test)


def test_pool_is_subsampled_deterministically(tmp_path):
    train = _write_tsv(tmp_path / "train.tsv", [(f"s{i}", f"t{i}") for i in range(50)])
    test = _write_tsv(tmp_path / "test.tsv", [("A", "B")])
    first = _ingest(train, test, pool_size=10)[0]["pool"]
    assert first.num_rows == 10
    assert first.equals(_ingest(train, test, pool_size=10)[0]["pool"])
