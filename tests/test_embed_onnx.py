"""The int8 encoder's file (checksum, repair, errors), its runtime identity and long-input parity.

The export runs at most once per test process: an embedder in a new cache folder copies the
encoder this process already made (tests/test_embed.py's or this module's first)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from pipeline.index import identity_difference
from schemas.config import EmbedderSpec
from schemas.errors import UserError
from stages.embed import onnx_int8, onnx_store
from stages.embed.cache import identity_folder
from stages.embed.models import make_embedder

TEXTS = ["The committee approved the budget for next year.", "A cat sleeps."]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(embedder, its vectors of TEXTS): an int8 encoder made once for the module."""
    embedder = make_embedder(EmbedderSpec(), progress=False, model_cache=tmp_path_factory.mktemp("int8"))
    return embedder, embedder.embed(TEXTS)


@pytest.fixture(scope="module")
def plain():
    return make_embedder(EmbedderSpec(), progress=False, fast=False)


def _cached(tmp_path, made):
    embedder = make_embedder(EmbedderSpec(), progress=False, model_cache=tmp_path)
    return embedder, identity_folder(tmp_path, made[0].identity()) / onnx_int8.MODEL_FILE


def test_a_truncated_cached_encoder_is_made_again_with_a_warning(made, tmp_path):
    first, target = _cached(tmp_path, made)
    first.embed(TEXTS)
    good = target.read_bytes()
    assert target.with_name(target.name + onnx_store.DIGEST_SUFFIX).read_text().strip() == onnx_store.file_sha256(target)
    target.write_bytes(good[: len(good) // 3])  # a copy cut short
    again, _ = _cached(tmp_path, made)
    with pytest.warns(UserWarning, match="damaged"):
        np.testing.assert_array_equal(again.embed(TEXTS), made[1])
    assert target.read_bytes() == good


def test_a_cached_encoder_that_does_not_load_is_made_again(made, tmp_path):
    first, target = _cached(tmp_path, made)
    first.embed(TEXTS)
    target.write_bytes(b"not a model")  # written so, checksum and all: onnxruntime refuses it
    target.with_name(target.name + onnx_store.DIGEST_SUFFIX).write_text(onnx_store.file_sha256(target))
    again, _ = _cached(tmp_path, made)
    with pytest.warns(UserWarning, match="does not load"):
        np.testing.assert_array_equal(again.embed(TEXTS), made[1])


def test_an_export_failure_is_a_one_line_user_error(made, tmp_path, monkeypatch):
    def unsupported(*_):
        raise RuntimeError("Unsupported: ONNX export of operator foo\nlong trace")

    monkeypatch.setattr(onnx_int8, "export_encoder", unsupported)
    monkeypatch.setattr(onnx_int8, "_MADE", {})
    with pytest.raises(UserError, match=r"ONNX export .* failed \(RuntimeError: Unsupported.*--exact-embeddings") as e:
        make_embedder(EmbedderSpec(), progress=False, model_cache=tmp_path).embed(TEXTS)
    assert "\n" not in str(e.value)


def test_an_unwritable_cache_is_a_user_error(made, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(UserError, match="cannot write the int8 encoder.*--cache-dir"):
        make_embedder(EmbedderSpec(), progress=False, model_cache=tmp_path / "file").embed(TEXTS)


def test_ffn_down_projections_kept_fp32_are_found_one_per_layer(made, tmp_path, monkeypatch):
    model = made[0].model()
    fp32 = tmp_path / "encoder.onnx"
    onnx_int8.export_encoder(model[0].auto_model, fp32)
    monkeypatch.setattr(onnx_int8, "_FFN_OUT", "/ffn/down_proj/")  # an exporter that names them otherwise
    with pytest.raises(UserError, match=r"0 found for 6 layers.*--exact-embeddings"):
        onnx_int8.quantize(model, fp32, tmp_path / "int8.onnx")
    assert not (tmp_path / "int8.onnx").exists()


def test_quantising_leaves_the_root_logger_and_other_records_alone(made, tmp_path, caplog):
    seen = []
    level = logging.getLogger().level
    with onnx_int8._quiet_onnxruntime_advice():
        assert logging.getLogger().level == level
        with caplog.at_level(logging.WARNING):
            logging.warning("ours")
            seen = [r.getMessage() for r in caplog.records]
    assert seen == ["ours"]


def test_instruction_set_tag_names_the_int8_kernels():
    assert onnx_store.isa_tag("flags\t: fpu sse avx2 avx512bw avx512_vnni\n", "x86_64") == "avx512-vnni"
    assert onnx_store.isa_tag("flags\t: fpu sse avx2 avx_vnni\n", "x86_64") == "avx-vnni"
    assert onnx_store.isa_tag("flags\t: fpu sse avx2\n", "x86_64") == "avx2"
    assert onnx_store.isa_tag("", "aarch64") == "aarch64"


def test_a_cache_made_on_another_cpu_is_another_identity_folder(made, tmp_path, monkeypatch):
    here = made[0].identity()
    monkeypatch.setattr(onnx_store, "instruction_set", lambda: "avx2")
    there = make_embedder(EmbedderSpec(), progress=False).identity()
    assert there["runtime"]["isa"] == "avx2" and identity_folder(tmp_path, here) != identity_folder(tmp_path, there)
    assert identity_difference(there, here) == f"runtime isa: avx2 there, {here['runtime']['isa']} here"


def test_a_text_at_the_256_word_piece_cut_keeps_parity_with_fp32(made, plain):
    tokenizer = plain.model().tokenizer
    words = ("The regional council met on Tuesday to discuss the new budget for schools, roads and the "
             "hospital, and after a long debate about energy prices it approved the plan.").split()
    text = " ".join(words * 8)
    assert 245 <= len(tokenizer(text, truncation=True, max_length=256)["input_ids"]) <= 256
    pieces = [text, " ".join(words * 3)]  # at the cut, and about 100 word pieces
    cosines = (made[0].embed(pieces) * plain.embed(pieces)).sum(axis=1)
    assert cosines.min() >= 0.99, cosines  # bench/bench_embed_lengths.py: min 0.9976 at the cut
