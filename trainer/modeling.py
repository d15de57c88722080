"""Loading the base model, its tokenizer and an optional adapter, with the right device settings.

CPU runs use fp32 without gradient checkpointing (bf16 and checkpointing,
TRL's defaults, make CPU steps about 30x slower); CUDA runs use bf16 and SDPA attention.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from schemas.errors import UserError

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


def load_tokenizer(model_path: str, padding_side: str = "right"):
    """The tokenizer, with a pad token (EOS when the model has none) and the side asked for."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.eos_token is None:
        raise UserError(f"{model_path}: the tokenizer has no EOS token; the trainer needs one to "
                        "end completions")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = padding_side
    return tokenizer


def load_model(model_path: str, settings: DeviceSettings, attn_implementation: str = "sdpa"):
    from transformers import AutoModelForCausalLM

    if not Path(model_path).exists():
        raise UserError(f"{model_path}: model folder not found; pass a local folder with "
                        "config.json and weights (see trainer/convert_gguf.py for SmolLM2)")
    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=settings.dtype,
                                                 attn_implementation=attn_implementation)
    return model.to(settings.device)


def lora_config(r: int, alpha: int, dropout: float, targets: str):
    from peft import LoraConfig

    modules = QKV_MODULES if targets == "qkv" else ALL_MODULES
    return LoraConfig(r=r, lora_alpha=alpha, lora_dropout=dropout, target_modules=modules,
                      bias="none", task_type="CAUSAL_LM")


def read_run_config(adapter: str | Path) -> dict[str, Any]:
    """The resolved training config saved next to an adapter (empty when there is none)."""
    path = Path(adapter) / RUN_CONFIG
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def base_model_path(model: str | None, adapter: str | None) -> str:
    """`--model` when given, else the base model the adapter was trained from."""
    if model:
        return model
    recorded = read_run_config(adapter).get("config", {}).get("model") if adapter else None
    if not recorded:
        raise UserError("no base model: pass --model (an adapter without run_config.json does not "
                        "say which model it was trained from)")
    return recorded


def load_for_inference(model: str | None, adapter: str | None, device: str = "auto"):
    """Base model plus adapter (if any), in eval mode, with a left-padding tokenizer."""
    settings = device_settings(device)
    path = base_model_path(model, adapter)
    tokenizer = load_tokenizer(path, padding_side="left")
    base = load_model(path, settings)
    if adapter:
        from peft import PeftModel

        if not (Path(adapter) / "adapter_config.json").is_file():
            raise UserError(f"{adapter}: no adapter_config.json; pass a folder saved by trainer/sft.py")
        base = PeftModel.from_pretrained(base, adapter)
    base.eval()
    return base, tokenizer
