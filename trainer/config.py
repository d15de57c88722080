"""Typed run configurations of the trainer commands, read from an optional YAML file and the CLI.

Every command turns its arguments into one of these models and hands it to a `main(cfg)` that
never looks at `sys.argv`, so tests and notebooks call the same code path as the shell. Precedence:
model defaults < YAML (`--config FILE`) < explicit command-line flags.
"""
from __future__ import annotations

import argparse
import sys
import types
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from schemas.errors import UserError

Batching = Literal["padded", "grouped", "padding_free"]
Device = Literal["auto", "cpu", "cuda"]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class GenerationOptions(Strict):
    """How outputs are produced and compared; shared by evaluation, probes and the probe callback."""

    device: Device = "auto"
    gen_batch_size: int = 16
    max_new_tokens: int = 64
    comet_path: str | None = None  # local COMET-22 checkpoint; None = chrF similarity only
    limit: int | None = None  # keep the first N test items of each test set, for quick runs
    threads: int | None = None  # torch CPU threads; 1 is often fastest on a busy shared machine


class TrainConfig(GenerationOptions):
    """Fine-tuning one LoRA adapter on one regime of one dataset version (docs/design.md section 5)."""

    data: str
    model: str
    regime: Literal["zero", "random", "similar", "contrastive"] = "contrastive"
    output_dir: str | None = None  # default: runs/train/<task>-<version>-<regime>
    lora_r: int = 16
    lora_alpha: int = 16
    lora_dropout: float = 0.05
    lora_targets: Literal["qkv", "all"] = "qkv"  # all = every attention and MLP projection
    learning_rate: float = 2e-4
    batch_size: int = 2
    grad_accum: int = 1
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    max_length: int = 1024
    max_drop_share: float = 0.02  # refuse to train when more rows than this would be cut
    batching: Batching = "padded"  # grouped / padding_free are the GPU throughput options
    attn_implementation: str = "sdpa"  # flash_attention_2 (if installed) suits padding_free best
    seed: int = 0
    logging_steps: int = 10
    save_steps: int = 0  # 0 = save only the final adapter
    probe_every: int = 0  # run the probes every N optimizer steps; 0 = never during training
    train_limit: int | None = None  # keep only the first N training rows, for quick runs

    @model_validator(mode="after")
    def _check(self) -> "TrainConfig":
        if not 0.0 <= self.max_drop_share <= 1.0:
            raise ValueError(f"max_drop_share must be in [0, 1], got {self.max_drop_share}")
        if self.batch_size < 1 or self.grad_accum < 1 or self.max_length < 8:
            raise ValueError("batch_size and grad_accum must be >= 1 and max_length >= 8")
        return self


class EvalConfig(GenerationOptions):
    """Accuracy of one model (base, or base + adapter) on a version's `eval` set."""

    data: str
    model: str | None = None  # default: the base model recorded in the adapter's run config
    adapter: str | None = None
    output: str | None = None  # JSON report; a PNG with the same stem is written next to it
    label: str | None = None  # name of this model in charts (default: adapter's regime or "base")
    resamples: int = 1000
    seed: int = 0


class ProbeConfig(GenerationOptions):
    """The IWL / ICL / copy probes of one model on a version's `probe` set."""

    data: str
    model: str | None = None
    adapter: str | None = None
    output: str | None = None
    step: int | None = None  # training step recorded with the scores (default: the adapter's)


class CompareConfig(Strict):
    """Several evaluation or probe reports drawn on one chart."""

    reports: list[str]  # LABEL=PATH or PATH (label taken from the report)
    output: str
    kind: Literal["eval", "probe"] = "eval"


def load_config(model_cls: type[Strict], yaml_path: str | None, overrides: dict[str, Any]) -> Strict:
    """Merge YAML and overrides into `model_cls`, turning validation errors into one clear line."""
    values: dict[str, Any] = {}
    if yaml_path:
        path = Path(yaml_path)
        if not path.is_file():
            raise UserError(f"{path}: config file not found; pass an existing YAML file to --config")
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise UserError(f"{path}: expected a mapping of option names to values")
        values.update({key.replace("-", "_"): value for key, value in loaded.items()})
    values.update(overrides)
    try:
        return model_cls(**values)
    except ValidationError as err:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg']}"
                             for e in err.errors())
        raise UserError(f"{yaml_path or 'command line'}: {problems}; fix these options") from None


def _base_type(annotation: Any) -> Any:
    """`int | None` -> int; Literal and plain types pass through."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def _add_field(parser: argparse.ArgumentParser, name: str, annotation: Any, default: Any) -> None:
    flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
    kind = _base_type(annotation)
    hint = f"(default: {default})" if default is not None else ""
    if kind is bool:
        parser.add_argument(*flags, dest=name, action=argparse.BooleanOptionalAction,
                            default=argparse.SUPPRESS, help=hint)
    elif typing.get_origin(kind) is Literal:
        parser.add_argument(*flags, dest=name, choices=typing.get_args(kind),
                            default=argparse.SUPPRESS, help=hint)
    elif typing.get_origin(kind) is list:
        parser.add_argument(*flags, dest=name, nargs="+", default=argparse.SUPPRESS, help=hint)
    else:
        parser.add_argument(*flags, dest=name, type=kind if kind in (int, float) else str,
                            default=argparse.SUPPRESS, help=hint)


def build_parser(model_cls: type[Strict], description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of options; flags given here override it")
    for name, info in model_cls.model_fields.items():
        default = None if info.is_required() else info.default
        _add_field(parser, name, info.annotation, default)
    return parser


def parse_cli(model_cls: type[Strict], argv: list[str] | None, description: str | None = None):
    """Parse `argv` into `model_cls`; only flags actually given override the YAML values."""
    args = vars(build_parser(model_cls, description).parse_args(argv))
    yaml_path = args.pop("config", None)
    return load_config(model_cls, yaml_path, args)


def run_cli(model_cls: type[Strict], main, argv: list[str] | None, description: str | None) -> int:
    """Parse, run `main(config)`, and turn a `UserError` into one line on stderr and exit code 2."""
    try:
        main(parse_cli(model_cls, argv, description))
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
