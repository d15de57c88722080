"""The CPU fast path of the MiniLM embedder: the encoder in ONNX Runtime with static int8 weights
and activations.

The sentence-transformers encoder (its first module) is exported with `torch.onnx.export` from the
local weights (no network), and its Linear layers except the FFN down-projections are smoothed
(`stages.embed.smoothing`, SmoothQuant alpha 0.5) and quantised statically
(`onnxruntime.quantization.quantize_static`, QDQ, per-channel int8 weights, uint8 activations with
MinMax ranges from the fixed `CALIBRATION` texts). Static ranges make a text's vector independent
of the texts batched with it (cache-safe); dynamic int8 rescales every batch. Measured on 400
generated sentences (pairwise cosines, against fp32): smoothing halves the mean cosine error
(0.013 -> 0.0066); the FFN down-projections stay fp32, since their GELU inputs in int8 cost
another 0.03 (vector parity min 0.86 with them, 0.995 without). Pooling and normalisation run in
the model's own sentence-transformers modules on the encoder output.

The calibration texts are short (at most ~40 word pieces), yet parity holds to MiniLM's 256 cut:
bench/bench_embed_lengths.py measures min cosine with fp32 0.9968 (short), 0.9973 (100-160 word
pieces) and 0.9976 (cut at 256); adding paragraphs past the cut to the calibration changed these by
under 0.001 (0.9965, 0.9967, 0.9975), so the set stays as it is (bench/RESULTS.md).

The quantised model is written once per model identity into the embedding cache folder (temp file,
fsync, rename, sha256 beside it: `stages.embed.onnx_store`), so later builds load it in about a second.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np

from schemas.errors import UserError
from stages.embed import onnx_store
from stages.embed.smoothing import smoothed_copy

SCHEME = "onnx-int8-static-qdq-smoothquant-a0.5-minmax-ffn-out-fp32-v1"
MODEL_FILE = "encoder-int8.onnx"
ALPHA = 0.5  # SmoothQuant migration strength
_FFN_OUT = "/output/dense/"  # BERT naming: the FFN down-projection (attention's is /attention/output/dense/)
_OPSET = 17

# Calibration text for the int8 ranges: fixed (so the vectors are), varied in length and register.
CALIBRATION = [
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
INPUTS = ("input_ids", "attention_mask")
_MADE: dict[str, Path] = {}  # identity folder name -> an int8 encoder this process made or found


def quantized_encoder(model, folder: Path | None) -> Path:
    """The cached int8 encoder in `folder` (an identity folder of the embedding cache), made first
    if absent or damaged (its sha256 differs); `folder=None` makes it in a temp folder that the
    caller owns (no cache). A process that made one already copies it into a new cache folder
    instead of exporting again."""
    key = Path(folder).name if folder is not None else None
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="ictrain-onnx-"))
    target = folder / MODEL_FILE
    if not onnx_store.intact(target):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            _write(model, target, _MADE.get(key))
        except OSError as error:
            raise UserError(f"cannot write the int8 encoder into {folder} ({error.strerror or error}); pass a "
                            "writable --cache-dir, or --exact-embeddings for plain fp32") from None
    if key is not None:
        _MADE[key] = target
    return target


def forget(folder: Path) -> None:
    """This process no longer copies the encoder of `folder`'s identity (it failed to load)."""
    _MADE.pop(Path(folder).name, None)


def _write(model, target: Path, earlier: Path | None) -> None:
    tmp = target.with_name(f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}-{MODEL_FILE}")
    try:
        _make(model, tmp, earlier)
        onnx_store.publish(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def _make(model, out: Path, earlier: Path | None) -> None:
    if earlier is not None and onnx_store.intact(earlier):
        shutil.copyfile(earlier, out)
        return
    with tempfile.TemporaryDirectory(prefix="ictrain-export-") as scratch:
        fp32 = Path(scratch) / "encoder-fp32.onnx"
        try:
            export_encoder(smoothed_copy(model, CALIBRATION, ALPHA, _quantised), fp32)
        except (UserError, OSError):
            raise
        except Exception as error:  # any model the exporter cannot trace: say which and what to do
            first = (str(error).strip().splitlines() or [""])[0][:200]
            raise UserError(f"embedder model {_model_name(model)}: the ONNX export for the int8 fast path failed "
                            f"({type(error).__name__}: {first}); pass --exact-embeddings for plain fp32") from None
        quantize(model, fp32, out)


def _model_name(model) -> str:
    config = getattr(model[0].auto_model, "config", None)
    return repr(getattr(config, "_name_or_path", None) or type(model[0].auto_model).__name__)


def export_encoder(encoder, path: Path) -> None:
    """A transformer (`AutoModel`) as ONNX with dynamic batch and length, token states out."""
    import warnings

    import torch

    class Encoder(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    sample = torch.ones(2, 8, dtype=torch.long)
    axes = {"batch": 0, "tokens": 1}
    dynamic = {name: {index: axis for axis, index in axes.items()} for name in (*INPUTS, "token_embeddings")}
    with warnings.catch_warnings(), torch.no_grad():
        # the tracer's notes on Python booleans it folds (no mask-less branch); other warnings still show
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # its note that negative gather indices would export wrongly: BERT's position ids are never negative
        warnings.filterwarnings("ignore", message="Exporting aten::index operator", category=UserWarning)
        # the TorchScript exporter is chosen on purpose (dynamo=False): its deprecation notes, not ours to fix
        warnings.filterwarnings("ignore", message="You are using the legacy TorchScript", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torch\.onnx")
        torch.onnx.export(Encoder(encoder).eval(), (sample, sample), str(path), input_names=list(INPUTS),
                          output_names=["token_embeddings"], dynamic_axes=dynamic, opset_version=_OPSET, dynamo=False)


def quantize(model, fp32: Path, out: Path) -> None:
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    graph = onnx.load(str(fp32), load_external_data=False).graph
    weights = {init.name for init in graph.initializer}
    matmuls = [node.name for node in graph.node if node.op_type == "MatMul" and node.input[1] in weights]
    _check_kept_fp32([name for name in matmuls if _is_ffn_down(name)], _layers(model), model)
    linear = [name for name in matmuls if not _is_ffn_down(name)]
    with _quiet_onnxruntime_advice():
        quantize_static(str(fp32), str(out), _Calibration(model), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, op_types_to_quantize=["MatMul"],
                        nodes_to_quantize=linear, calibrate_method=CalibrationMethod.MinMax)


def _layers(model) -> int:
    return int(model[0].auto_model.config.num_hidden_layers)


def _check_kept_fp32(kept: list[str], layers: int, model) -> None:
    """Exactly one FFN down-projection per layer stays fp32: the exclusion goes by ONNX node name,
    and an exporter that names nodes otherwise would silently quantise them all."""
    found = sorted(int(m.group(1)) for m in map(re.compile(r"layer\.(\d+)/").search, kept) if m)
    if found != list(range(layers)) or len(kept) != layers:
        raise UserError(f"embedder model {_model_name(model)}: the ONNX export names its FFN down-projections "
                        f"otherwise than expected ({len(kept)} found for {layers} layers, pattern {_FFN_OUT!r}); "
                        "pass --exact-embeddings for plain fp32")


@contextlib.contextmanager
def _quiet_onnxruntime_advice():
    """Drop onnxruntime.quantization's below-error log records (its "consider pre-processing" advice)
    while quantising; the root logger's level and every other logger's records stay as they are."""
    import logging

    def keep(record: logging.LogRecord) -> bool:
        return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname

    root = logging.getLogger()
    root.addFilter(keep)
    try:
        yield
    finally:
        root.removeFilter(keep)


def _is_ffn_down(node: str) -> bool:
    return _FFN_OUT in node and "/attention/" not in node


def _quantised(module: str) -> bool:
    """By torch module name: the Linear layers that go int8 (and are smoothed first)."""
    return not module.startswith("pooler") and not _is_ffn_down("/" + module.replace(".", "/") + "/")


class _Calibration:
    """One calibration text per batch, so no padding enters the ranges."""

    def __init__(self, model):
        self.items = [feeds(model.tokenizer, [text], model.max_seq_length) for text in CALIBRATION]
        self.rewind()

    def get_next(self):
        return next(self._items, None)

    def rewind(self):
        self._items = iter(self.items)


def feeds(tokenizer, texts: list[str], max_length: int) -> dict[str, np.ndarray]:
    encoded = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="np")
    return {name: np.asarray(encoded[name], dtype=np.int64) for name in INPUTS}


def session(path: Path, threads: int):
    """An ONNX Runtime session on `threads` cores (the caller passes torch's thread count, which
    `--threads` sets)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    # no busy-waiting between ops: on cores shared with other jobs a spinning thread steals the time its
    # siblings need (measured 75 -> 100 texts/s at load average 9 on 2 cores, bench/RESULTS.md)
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def pooled(model, token_embeddings: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
    """The model's own modules after the transformer (pooling, normalisation, any dense layer)."""
    import torch

    features = {"token_embeddings": torch.from_numpy(token_embeddings),
                "attention_mask": torch.from_numpy(attention_mask)}
    with torch.no_grad():
        for module in list(model)[1:]:
            features = module(features)
    return features["sentence_embedding"].numpy()
