"""BM25 retrieval checked against rank_bm25 (the oracle) on generated word soups."""
from __future__ import annotations

import unicodedata

import numpy as np
import pytest
from rank_bm25 import BM25Okapi

import stages.retrieve.bm25 as retrieve
import stages.retrieve.scoring as scoring
from schemas.errors import UserError
from stages.retrieve.bm25 import BM25Index, bm25_topk, tokenize, tokenize_many


def word_soup(seed: int, n_docs: int = 300, vocab: int = 150, max_len: int = 16) -> list[list[str]]:
    """Zipf-ish docs with exact duplicates and empty docs; word 0 is in most docs (negative idf)."""
    rng = np.random.default_rng(seed)
    probs = 1.0 / np.arange(1, vocab + 1)
    probs /= probs.sum()
    docs = [[f"w{t}" for t in rng.choice(vocab, size=rng.integers(1, max_len), p=probs)] + ["w0"]
            for _ in range(n_docs)]
    for i in rng.choice(n_docs, size=n_docs // 10, replace=False):
        docs[i] = []
    for i in rng.choice(n_docs, size=n_docs // 10, replace=False):
        docs[i] = list(docs[int(rng.integers(n_docs))])
    return docs


def queries_for(corpus: list[list[str]], seed: int, n: int = 60) -> list[list[str]]:
    """Pool rows, random soups with repeated and out-of-vocabulary tokens, and degenerate queries."""
    rng = np.random.default_rng(seed)
    vocab = sorted({tok for doc in corpus for tok in doc})
    queries = [list(corpus[int(i)]) for i in rng.choice(len(corpus), size=n // 2)]
    for _ in range(n - n // 2):
        words = list(rng.choice(vocab, size=rng.integers(1, 8)))
        queries.append(words + words[:2] + [f"oov{rng.integers(5)}"])
    return queries + [[], ["never_seen"], ["w0", "w0", "w0"]]


def oracle_order(scores: np.ndarray, exclude: set[int], k: int) -> np.ndarray:
    scores = scores.copy()
    scores[list(exclude)] = -np.inf
    return np.lexsort((np.arange(len(scores)), -scores))[:k]


def random_exclusions(n_queries: int, n_docs: int, seed: int) -> list[set[int]]:
    rng = np.random.default_rng(seed)
    return [set(rng.choice(n_docs, size=rng.integers(0, 6)).tolist()) for _ in range(n_queries)]


def assert_same_up_to_ties(got: np.ndarray, oracle_scores: np.ndarray, exclude: set[int], k: int) -> None:
    """Sets may differ only by docs whose oracle score ties with the oracle's k-th score."""
    want = oracle_order(oracle_scores, exclude, k)
    kth = oracle_scores[want[-1]]
    for doc in set(want.tolist()) ^ set(got.tolist()):
        assert abs(oracle_scores[doc] - kth) <= 1e-9 * max(1.0, abs(kth))


@pytest.mark.parametrize("word, pieces", [("हिन्दी भाषा", ["हिन्दी", "भाषा"]), ("தமிழ் மொழி", ["தமிழ்", "மொழி"])])
def test_tokenize_keeps_indic_words_whole(word, pieces):
    assert tokenize(word) == pieces
    assert tokenize(unicodedata.normalize("NFD", word)) == pieces


def test_tokenize_english_case_punctuation_and_joiners():
    assert tokenize("Hello, WORLD! It's 2026... e-mail_id; A") == ["hello", "world", "it", "s", "2026", "e", "mail_id", "a"]
    assert tokenize("  ¿Qué?  Ça VA. ") == ["qué", "ça", "va"]
    assert tokenize("क्\u200dष") == ["क्\u200dष"]
    assert tokenize("") == [] and tokenize("!!! ...") == []
    assert tokenize_many(["Ab cd", "हिन्दी"]) == [["ab", "cd"], ["हिन्दी"]]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_get_scores_equal_rank_bm25(seed):
    corpus = word_soup(seed)
    index, oracle = BM25Index(corpus), BM25Okapi(corpus)
    assert np.isclose(index.average_idf, oracle.average_idf)
    assert (index.idf == index.epsilon * index.average_idf).any()  # the negative-idf floor was used
    for query in queries_for(corpus, seed):
        np.testing.assert_allclose(index.get_scores(query), oracle.get_scores(query), rtol=1e-9, atol=1e-8)


@pytest.mark.parametrize("seed, head_df, chunk, block", [(0, 0.05, 128, 4_000_000), (1, 2.0, 4, 1000),
                                                         (2, 0.0, 2, 3000), (3, 0.3, 8, 50_000)])
def test_topk_matches_rank_bm25_with_exclusions(monkeypatch, seed, head_df, chunk, block):
    """Covers dense-head / sparse-only scoring, the chunked prefilter and several batch sizes."""
    monkeypatch.setattr(retrieve, "_HEAD_DF", head_df)
    monkeypatch.setattr(scoring, "_CHUNK", chunk)
    monkeypatch.setattr(retrieve, "_BLOCK_FLOATS", block)
    corpus = word_soup(seed, n_docs=400)
    queries = queries_for(corpus, seed)
    exclude = random_exclusions(len(queries), len(corpus), seed)
    index, oracle = BM25Index(corpus), BM25Okapi(corpus)
    idx, scores = index.topk(queries, 7, exclude=exclude)
    assert idx.dtype == np.int64 and scores.dtype == np.float32 and idx.shape == scores.shape == (len(queries), 7)
    for i, query in enumerate(queries):
        oracle_scores = oracle.get_scores(query)
        assert not set(idx[i].tolist()) & exclude[i]
        assert_same_up_to_ties(idx[i], oracle_scores, exclude[i], 7)
        np.testing.assert_allclose(scores[i], oracle_scores[idx[i]], rtol=1e-6, atol=1e-6)
        own = oracle_order(index.get_scores(query), exclude[i], 7)
        np.testing.assert_array_equal(idx[i], own)  # exact order: score desc, then lower index


def test_ties_go_to_lower_indices_and_runs_are_deterministic(monkeypatch):
    monkeypatch.setattr(retrieve, "_SPARE", 2)  # 30 identical docs overflow the spare candidates
    corpus = [["a", "b"]] * 30 + [["c", "d", "e"]] * 5 + [["a", "x"]]
    queries = [["a", "b"], ["zzz"], [], ["c"]]
    idx, scores = BM25Index(corpus).topk(queries, 4, exclude=[{0, 5}, set(), set(), {31}])
    np.testing.assert_array_equal(idx, [[1, 2, 3, 4], [0, 1, 2, 3], [0, 1, 2, 3], [30, 32, 33, 34]])
    assert (scores[1:3] == 0).all()
    again = bm25_topk(queries, corpus, 4, exclude=[{0, 5}, set(), set(), {31}])
    np.testing.assert_array_equal(again[0], idx)
    np.testing.assert_array_equal(again[1], scores)


def test_padding_when_too_few_docs_are_left():
    corpus = [["a"], ["b"], ["a", "b"], ["c"], ["d"]]
    idx, scores = bm25_topk([["a"], ["b"]], corpus, 6, exclude=[{0, 1, 2, 3}, set()])
    np.testing.assert_array_equal(idx, [[4, -1, -1, -1, -1, -1], [1, 2, 0, 3, 4, -1]])
    assert np.isneginf(scores[0, 1:]).all() and np.isfinite(scores[1, :5]).all() and np.isneginf(scores[1, 5])


@pytest.mark.parametrize("corpus", [[], [[], [], []]])
def test_degenerate_corpora_do_not_crash(corpus):
    index = BM25Index(corpus)
    assert index.get_scores(["a"]).tolist() == [0.0] * len(corpus)
    idx, scores = index.topk([["a"], []], 2)
    expected = [0, 1] if corpus else [-1, -1]
    assert idx.tolist() == [expected, expected]
    assert index.topk([["a"]], 0)[0].shape == (1, 0) and index.topk([], 3)[0].shape == (0, 3)
    assert index.score_external(["a"], ["a", "b"]) == 0.0


def test_score_pairs_and_score_external_agree_with_get_scores():
    corpus = word_soup(4)
    queries = queries_for(corpus, 4, n=10)
    index = BM25Index(corpus)
    rng = np.random.default_rng(4)
    doc_ids = rng.integers(0, len(corpus), size=(len(queries), 5))
    doc_ids[0, 0] = -1
    pairs = index.score_pairs(queries, doc_ids)
    assert pairs.shape == doc_ids.shape and np.isneginf(pairs[0, 0])
    for i, query in enumerate(queries):
        full = index.get_scores(query)
        valid = doc_ids[i] >= 0
        np.testing.assert_array_equal(pairs[i][valid], full[doc_ids[i][valid]])  # bit for bit: exact sums
        for d in doc_ids[i][valid]:
            assert index.score_external(query, corpus[d]) == full[d]
    paraphrase = ["w3", "w7", "w7", "unknown"]
    tf = 2 * (index.k1 + 1) / (2 + index.k1 * (1 - index.b + index.b * 4 / index.avgdl))
    assert index.score_external(["w7", "nope"], paraphrase) == pytest.approx(index.idf[index.vocab["w7"]] * tf, abs=1e-9)


def test_bad_input_gets_clear_errors():
    with pytest.raises(UserError, match="tokenize"):
        BM25Index(["plain text, not tokens"])
    index = BM25Index([["a"], ["b"]])
    with pytest.raises(UserError, match="one set per query"):
        index.topk([["a"]], 1, exclude=[set(), set()])
    with pytest.raises(UserError, match="outside"):
        index.topk([["a"]], 1, exclude=[{5}])
    with pytest.raises(UserError, match="non-negative"):
        index.topk([["a"]], -1)
    with pytest.raises(UserError, match="doc ids"):
        index.score_pairs([["a"]], np.array([[2]]))
    with pytest.raises(UserError, match="shape"):
        index.score_pairs([["a"]], np.array([0, 1]))
    assert index.score_pairs([], np.zeros((0, 3), np.int64)).shape == (0, 3)
    with pytest.raises(UserError, match="query 1"):
        index.topk([["a"], "b"], 1)


def test_cuda_device_gives_the_cpu_result():
    """Falls back to the CPU without a GPU; on a GPU machine this checks the GPU path."""
    corpus = word_soup(5)
    queries = queries_for(corpus, 5, n=20)
    exclude = random_exclusions(len(queries), len(corpus), 5)
    index = BM25Index(corpus)
    cpu = index.topk(queries, 6, exclude=exclude)
    gpu = index.topk(queries, 6, exclude=exclude, device="cuda")
    np.testing.assert_array_equal(cpu[0], gpu[0])
    np.testing.assert_allclose(cpu[1], gpu[1], rtol=1e-6)
