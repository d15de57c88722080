"""The appendable example index: exact BM25 after appends (rank_bm25 as the oracle), prompts
byte-identical to a real build's eval rows, durable all-or-nothing appends, the leakage guard."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

import stages.index.live_bm25 as live_bm25
from pipeline.index import create_index, open_index
from pipeline.store import load_split
from schemas.errors import UserError
from stages.index.files import LOG
from stages.index.live_bm25 import LiveBM25
from tests.conftest import run_pipeline

ROOT = Path(__file__).resolve().parents[1]


def zipf_docs(seed: int, n: int) -> list[list[str]]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(60)]
    p = 1 / np.arange(1, 61)
    return [list(rng.choice(words, size=rng.integers(0, 14), p=p / p.sum())) for _ in range(n)]


@pytest.mark.parametrize("merge_min", [10 ** 9, 40])  # never merged / merged into the base many times
def test_scores_after_appends_equal_a_rebuild_and_rank_bm25(monkeypatch, merge_min):
    monkeypatch.setattr(live_bm25, "_MERGE_MIN", merge_min)
    corpus = zipf_docs(merge_min % 7, 400)
    live = LiveBM25.from_corpus(corpus[:150])
    for start in range(150, 400, 23):
        live.append(corpus[start:start + 23])
    scratch, oracle = LiveBM25.from_corpus(corpus), BM25Okapi(corpus)
    assert sum("w0" in doc for doc in corpus) > len(corpus) / 2  # w0's idf takes the epsilon floor
    for query in [corpus[5], corpus[390], ["w0", "w0", "w3", "unseen"], ["w59"], []]:
        scores = live.snapshot.scores(live.term_counts(query))
        assert np.array_equal(scores, scratch.snapshot.scores(scratch.term_counts(query)))
        np.testing.assert_allclose(scores, oracle.get_scores(query), rtol=1e-9, atol=1e-8)


def test_an_old_snapshot_is_not_changed_by_later_appends():
    corpus = zipf_docs(3, 120)
    live = LiveBM25.from_corpus(corpus[:100])
    before = live.snapshot
    expected = before.scores(live.term_counts(corpus[0]))
    live.append(corpus[100:])
    assert np.array_equal(before.scores(live.term_counts(corpus[0])), expected)
    assert live.snapshot.n_docs == 120 and before.n_docs == 100


@pytest.fixture(scope="module")
def index_dir(align_synth_version, tmp_path_factory) -> Path:
    return create_index(align_synth_version, tmp_path_factory.mktemp("index") / "idx")


def test_index_scores_after_add_equal_rank_bm25_on_the_same_pairs(index_dir, tmp_path):
    import shutil

    folder = tmp_path / "idx"
    shutil.copytree(index_dir, folder)
    index = open_index(folder, writable=True)
    report = index.add([("A B C X Y", "aa bb"), ("Q R S", "qq rr ss"), ("", "x"), ("A B C X Y", "aa bb")])
    assert report["added"] == 2 and report["duplicates"] == 1
    assert report["rejected"] == [{"item": 2, "reason": "empty source", "detail": ""}]
    index.close()
    reopened = open_index(folder)
    tokens = reopened.tokenize(reopened.sources)
    oracle, scratch = BM25Okapi(tokens), LiveBM25.from_corpus(tokens)
    for query in (tokens[0], tokens[-1], reopened.tokenize(["A B Q"])[0]):
        scores = reopened._snap.bm25.scores(reopened.bm25.term_counts(query))
        assert np.array_equal(scores, scratch.snapshot.scores(scratch.term_counts(query)))
        np.testing.assert_allclose(scores, oracle.get_scores(query), rtol=1e-9, atol=1e-8)


def test_prompts_are_byte_identical_to_the_builds_eval_rows(align_synth_version, index_dir):
    index = open_index(index_dir)
    rows = [r for r in load_split(align_synth_version / "eval") if r["eval_context"] in ("topk", "one_near")]
    assert rows
    for row in rows:
        assert index.render(row["source"], row["examples"]) == row["prompt"]
        got = index.query(row["source"], k=len(row["examples"]), policy=row["eval_context"])
        assert got["prompt"] == index.render(row["source"], got["examples"])
        if row["eval_context"] == "topk":  # the same k nearest (the build shuffles their order)
            assert sorted(e["id"] for e in got["examples"]) == sorted(e["id"] for e in row["examples"])
        else:  # the same nearest example among random ones
            assert [e["id"] for e in got["examples"] if e["origin"] == "near"] == \
                   [e["id"] for e in row["examples"] if e["origin"] == "near"]


def test_query_is_deterministic_and_guards_against_leakage(index_dir):
    index = open_index(index_dir)
    pool_source = index.sources[0]
    variant = "  " + pool_source.lower() + " "  # normalises to the same input
    same = {i for i, s in enumerate(index.sources) if s.casefold() == pool_source.casefold()}
    for policy in ("topk", "one_near"):
        first = index.query(variant, k=4, policy=policy)
        assert first == index.query(variant, k=4, policy=policy)
        assert not {index.ids.index(e["id"]) for e in first["examples"]} & same
    with pytest.raises(UserError, match="policy"):
        index.query("A B", policy="best")
    with pytest.raises(UserError, match="empty"):
        index.query("   ")


def test_a_torn_append_is_left_out_and_cut_before_the_next(index_dir, tmp_path):
    import shutil

    folder = tmp_path / "idx"
    shutil.copytree(index_dir, folder)
    index = open_index(folder, writable=True)
    base = len(index)
    index.add([("K L M N", "kk ll")])
    index.close()
    line = (folder / LOG).read_bytes()
    with open(folder / LOG, "ab") as handle:  # a crash half way through the next record
        handle.write(line[: len(line) // 2].replace(b"K L M N", b"P Q R S"))
    index = open_index(folder, writable=True)
    assert len(index) == base + 1 and index.contains("K L M N", "kk ll")
    index.add([("T U V", "tt uu")])
    index.close()
    reopened = open_index(folder)
    assert len(reopened) == base + 2 and reopened.contains("T U V", "tt uu")
    assert not any(s == "P Q R S" for s in reopened.sources)


def test_compact_folds_the_log_into_a_new_index_that_answers_the_same(index_dir, tmp_path):
    import shutil

    folder = tmp_path / "idx"
    shutil.copytree(index_dir, folder)
    index = open_index(folder, writable=True)
    for i in range(3):
        index.add([(f"A B C {i} Z", f"added {i}"), (f"D E {i}", f"more {i}")])
    index.close()
    code, out, err = run_pipeline("index", "compact", str(folder), "--out", str(tmp_path / "compact"))
    assert code == 0, err
    old, new = open_index(folder), open_index(Path(out.strip()))
    assert not (Path(out.strip()) / LOG).exists() and new.meta.base_rows == len(old) == len(new)
    assert (new.ids, new.sources, new.targets) == (old.ids, old.sources, old.targets)
    for text in ("A B C 1 Z", "D E F G", old.sources[3]):
        assert new.query(text, policy="one_near") == old.query(text, policy="one_near")
        tokens = old.tokenize([text])[0]
        assert np.array_equal(new._snap.bm25.scores(new.bm25.term_counts(tokens)),
                              old._snap.bm25.scores(old.bm25.term_counts(tokens)))


def test_only_one_writer_at_a_time(index_dir, tmp_path):
    import shutil

    folder = tmp_path / "idx"
    shutil.copytree(index_dir, folder)
    writer = open_index(folder, writable=True)
    try:
        code, _, err = run_pipeline("index", "add", str(folder), str(ROOT / "pyproject.toml"))
        assert code == 2 and "another process is appending" in err
    finally:
        writer.close()


def test_cli_index_create_add_query(align_synth_version, tmp_path):
    folder = tmp_path / "idx"
    code, out, err = run_pipeline("index", "create", str(align_synth_version), "--out", str(folder))
    assert code == 0, err
    pairs = tmp_path / "new.tsv"
    pairs.write_text("source\ttarget\nA B C W\taa bb cc ww\n", encoding="utf-8")
    code, out, err = run_pipeline("index", "add", str(folder), str(pairs))
    assert code == 0 and json.loads(out)["added"] == 1, err
    code, out, err = run_pipeline("index", "query", str(folder), "A B C W", "--k", "3", "--policy", "one_near")
    result = json.loads(out)
    assert code == 0 and len(result["examples"]) == 3 and result["prompt"].endswith("Input: A B C W\nOutput:")
    code, _, err = run_pipeline("index", "query", str(tmp_path), "A")
    assert code == 2 and err.startswith("error:") and "not an example index" in err
    code, _, err = run_pipeline("index", "create", str(align_synth_version), "--out", str(folder))
    assert code == 2 and "already exists" in err


@pytest.fixture
def torch_threads_kept():
    """open_index sets torch's thread count for a model embedder: give the rest of the session back its own."""
    import torch

    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def test_an_mt_index_uses_the_builds_minilm_and_matches_its_eval_rows(tmp_path, torch_threads_kept, monkeypatch):
    from tests.conftest import build_local_mt

    version = build_local_mt(tmp_path / "mt")
    folder = create_index(version, tmp_path / "idx")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)  # the exported int8 encoder goes into the index folder, never the current one
    index = open_index(folder, writable=True)
    assert index.meta.embedder["kind"] == "sentence-transformers"
    for row in [r for r in load_split(version / "eval") if r["eval_context"] == "topk"][:4]:
        assert index.render(row["source"], row["examples"]) == row["prompt"]
        got = index.query(row["source"], k=4)
        assert sorted(e["id"] for e in got["examples"]) == sorted(e["id"] for e in row["examples"])
        assert [round(e["cosine"], 3) for e in sorted(got["examples"], key=lambda e: e["id"])] == \
               [round(e["cosine"], 3) for e in sorted(row["examples"], key=lambda e: e["id"])]
    index.add([("Tomorrow the river visits the doctor.", "कल नदी डॉक्टर")])
    got = index.query("Tomorrow the river visits the doctor again.", k=2)
    assert got["examples"][0]["target"] == "कल नदी डॉक्टर" or got["examples"][1]["target"] == "कल नदी डॉक्टर"
    index.close()
    assert list(cwd.iterdir()) == [] and list((folder / "embeddings").rglob("*.onnx"))


@pytest.mark.parametrize("seed", range(4))
def test_exact_top_k_prefilter_keeps_the_order_of_a_full_sort(seed):
    from stages.retrieve.scoring import exact_top_k

    rng = np.random.default_rng(seed)
    for _ in range(50):
        n, k = int(rng.integers(1, 6000)), int(rng.integers(1, 12))
        scores = rng.integers(0, 4, n).astype(float) if seed % 2 else rng.standard_normal(n)  # many ties / none
        scores[rng.random(n) < 0.3] = -np.inf
        chosen, values = exact_top_k(scores, k)
        expected = np.lexsort((np.arange(n), -scores))[:k]
        assert np.array_equal(chosen, expected) and np.array_equal(values, scores[expected])
