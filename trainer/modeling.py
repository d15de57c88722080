"""Loading the base model, its tokenizer and an optional adapter, with the right device settings.

CPU runs use fp32 without gradient checkpointing (bf16 and checkpointing,
TRL's defaults, make CPU steps about 30x slower); CUDA runs use bf16 and SDPA attention.
"""
from __future__ import annotations

import json
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.errors import UserError
from trainer.progress import say

QKV_MODULES = ["q_proj", "k_proj", "v_proj"]
ALL_MODULES = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
RUN_CONFIG = "run_config.json"


@dataclass(frozen=True)
class DeviceSettings:
    device: str
    bf16: bool
    dtype_name: str  # "float32" or "bfloat16"

    @property
    def dtype(self):
        import torch

        return getattr(torch, self.dtype_name)


def set_threads(threads: int | None) -> None:
    """Pin torch's CPU thread count when asked (the process-wide setting torch offers)."""
    if threads:
        import torch

        torch.set_num_threads(threads)


def device_settings(choice: str = "auto") -> DeviceSettings:
    import torch

    if choice == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is visible; use --device cpu or auto")
    use_cuda = choice == "cuda" or (choice == "auto" and torch.cuda.is_available())
    if use_cuda:
        return DeviceSettings("cuda", bf16=True, dtype_name="bfloat16")
    return DeviceSettings("cpu", bf16=False, dtype_name="float32")


MODEL_FOLDER_HINT = ("pass a local model folder holding config.json, the tokenizer and the weights "
                     "(trainer/convert_gguf.py writes one for SmolLM2)")


def model_folder(path: str | Path, option: str = "--model") -> str:
    """The absolute path of a local model folder, checked before torch is imported: transformers
    takes a missing folder for a Hub id and fails only after a long offline retry."""
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise UserError(f"{option} {path}: no such folder; {MODEL_FOLDER_HINT}")
    if not (folder / "config.json").is_file():
        raise UserError(f"{option} {path}: no config.json in this folder; {MODEL_FOLDER_HINT}")
    return str(folder.resolve())


def adapter_folder(path: str | Path) -> str:
    """The absolute path of an adapter folder saved by trainer/sft.py, checked before loading."""
    folder = Path(path).expanduser()
    if not (folder / "adapter_config.json").is_file():
        what = "no adapter_config.json in this folder" if folder.is_dir() else "no such folder"
        raise UserError(f"--adapter {path}: {what}; pass a folder saved by trainer/sft.py")
    return str(folder.resolve())


def load_tokenizer(model_path: str, padding_side: str = "right"):
    """The tokenizer, with a pad token (EOS when the model has none) and the side asked for."""
    path = model_folder(model_path)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.eos_token is None:
        raise UserError(f"{model_path}: the tokenizer has no EOS token; the trainer needs one to "
                        "end completions")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model(model_path: str, settings: DeviceSettings, attn_implementation: str = "sdpa",
               device: str | None = None):
    """The base model in the settings' dtype, on `device` (e.g. `cuda:1` for the second process
    of a launch) or else on the settings' device."""
    path = model_folder(model_path)
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(path, dtype=settings.dtype,
                                                 attn_implementation=attn_implementation)
    return model.to(device or settings.device)


@contextmanager
def peft_wrap_warning_silenced():
    """Silences exactly one FutureWarning around our calls that wrap a model in a PeftModel
    (SFTTrainer's get_peft_model, PeftModel.from_pretrained). Why here and not at its cause:
    PeftModel.__init__ itself (peft 0.21, the newest release) reads `model.is_gradient_checkpointing`,
    which transformers 5 deprecated in favour of `is_activation_checkpointing`; our code never
    reads it. Drop this once PEFT reads the new name."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated",
                                category=FutureWarning)
        yield


def lora_config(r: int, alpha: int, dropout: float, targets: str):
    from peft import LoraConfig

    modules = QKV_MODULES if targets == "qkv" else ALL_MODULES
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=modules,
                      bias="none", task_type="CAUSAL_LM")


def read_run_config(adapter: str | Path) -> dict[str, Any]:
    """The resolved training config saved next to an adapter (empty when there is none)."""
    path = Path(adapter) / RUN_CONFIG
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise UserError(f"{path}: not valid JSON ({err}); pass --model with the base model folder "
                        "and --label, or retrain the adapter") from None


def recorded_base_model(run: dict[str, Any]) -> str | None:
    """The base model folder a run config records: the absolute path sft.py resolved, or, in
    adapters saved before that, the path as typed (relative to where training ran)."""
    return run.get("base_model", {}).get("path") or run.get("config", {}).get("model")


def base_model_path(model: str | None, adapter: str | None) -> str:
    """The checked, absolute base model folder: `--model` when given, else the one recorded in
    the adapter's run_config.json, so `--adapter DIR` works from any working directory."""
    if model:
        return model_folder(model)
    if not adapter:
        raise UserError("no model given: pass --model (a base model folder) and/or --adapter "
                        "(a folder saved by trainer/sft.py)")
    recorded = recorded_base_model(read_run_config(adapter))
    if not recorded:
        raise UserError(f"--adapter {adapter}: no {RUN_CONFIG} saying which base model it was "
                        "trained from; pass --model with the base model folder")
    if not (Path(recorded) / "config.json").is_file():
        raise UserError(f"--adapter {adapter}: its base model {recorded} (recorded in {RUN_CONFIG}) "
                        "is not there any more; pass --model with the base model folder")
    return str(Path(recorded).resolve())


def inference_paths(model: str | None, adapter: str | None) -> tuple[str, str | None]:
    """(base model, adapter) as checked absolute folders, read from the files alone."""
    adapter_path = adapter_folder(adapter) if adapter else None
    return base_model_path(model, adapter_path), adapter_path


def load_for_inference(model_path: str, adapter: str | None, device: str = "auto"):
    """Base model (a folder checked by `base_model_path`) plus adapter (if any), in eval mode,
    with a left-padding tokenizer."""
    settings = device_settings(device)
    say(f"loading model {model_path}" + (f" with adapter {adapter}" if adapter else "")
        + f" on {settings.device} ({settings.dtype_name})")
    tokenizer = load_tokenizer(model_path, padding_side="left")
    base = load_model(model_path, settings)
    if adapter:
        from peft import PeftModel

        with peft_wrap_warning_silenced():
            base = PeftModel.from_pretrained(base, adapter_folder(adapter))
    base.eval()
    return base, tokenizer
