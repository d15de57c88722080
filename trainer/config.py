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
from pydantic.fields import FieldInfo
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from schemas.errors import UserError

Batching = Literal["padded", "grouped", "padding_free"]
Device = Literal["auto", "cpu", "cuda"]


BASE_MODEL_HELP = "base model: a local folder with config.json, tokenizer and weights"
ADAPTER_HELP = "adapter folder written by trainer/sft.py"
DATA_HELP = ("version folder written by `pipeline build` (DIR/<task>/<version> or DIR/<task>/latest), "
             "a `pipeline export` folder, or hub:OWNER/REPO@VERSION (downloaded into the Hugging Face cache)")


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def optional(description: str, when_unset: str, **constraints: Any) -> Any:
    """A field that may stay unset (None); `when_unset` says what happens then, for --help."""
    return Field(None, description=description, json_schema_extra={"when_unset": when_unset},
                 **constraints)


def keeps_something(limit: int | None, what: str, unset_means: str) -> int | None:
    """A "keep the first N" option must keep at least one; 0 would only fail later, obscurely."""
    if limit is not None and limit < 1:
        raise ValueError(f"{limit} keeps no {what}; pass N >= 1, or leave it out to {unset_means}")
    return limit


class GenerationOptions(Strict):
    """How outputs are produced and compared; shared by evaluation, probes and the probe callback."""

    device: Device = Field("auto", description="where to run: auto = CUDA when visible, else CPU")
    gen_batch_size: int = Field(16, ge=1, description="prompts generated per batch")
    max_new_tokens: int = Field(64, ge=1, description="longest answer generated, in tokens")
    comet_path: str | None = optional("local COMET-22 checkpoint (checkpoints/model.ckpt) for "
                                      "COMET scores", "chrF similarity only")
    limit: int | None = optional("keep the first N test items of each test set, for quick runs",
                                 "every item")
    threads: int | None = optional("torch CPU threads; 1 is often fastest on a busy shared machine",
                                   "torch's default", ge=1)

    @field_validator("limit")
    @classmethod
    def _limit_keeps_something(cls, value: int | None) -> int | None:
        return keeps_something(value, "test items", "use every item")


class TrainConfig(GenerationOptions):
    """Fine-tuning one LoRA adapter on one regime of one dataset version (docs/design.md section 5)."""

    data: str = Field(description=DATA_HELP)
    model: str = Field(description=f"{BASE_MODEL_HELP} (trainer/convert_gguf.py writes one for "
                       "SmolLM2)")
    regime: Literal["zero", "random", "similar", "contrastive"] = Field(
        "contrastive", description="training set to use: train-<regime> of the version")
    output_dir: str | None = optional("where the adapter and run_config.json go",
                                      "runs/train/<task>-<version>-<regime>")
    lora_r: int = Field(16, ge=1, description="LoRA rank")
    lora_alpha: int = Field(16, ge=1, description="LoRA scaling alpha")
    lora_dropout: float = Field(0.05, ge=0.0, lt=1.0, description="dropout on the LoRA input")
    lora_targets: Literal["qkv", "all"] = Field(
        "qkv", description="qkv = q/k/v projections; all = every attention and MLP projection")
    learning_rate: float = Field(2e-4, gt=0.0, description="AdamW peak learning rate, decayed linearly")
    batch_size: int = Field(2, ge=1, description="rows per device per micro-batch")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    epochs: float = Field(1.0, gt=0.0, description="passes over the training rows")
    max_steps: int = Field(-1, description="optimizer steps; > 0 overrides --epochs")
    max_length: int = Field(1024, ge=8, description="longest row in tokens (prompt + completion + "
                            "EOS); longer rows are dropped, never truncated")
    max_drop_share: float = Field(0.02, ge=0.0, le=1.0, description="refuse to train when more "
                                  "than this share of the rows would be dropped by --max-length")
    batching: Batching = Field("padded", description="padded = random padded batches; grouped / "
                               "padding_free are the GPU throughput options")
    attn_implementation: str = Field("sdpa", description="attention kernel; flash_attention_2 (if "
                                     "installed) suits padding_free best")
    seed: int = Field(0, description="seed of LoRA init, data order and dropout")
    logging_steps: int = Field(10, ge=1, description="record the loss every N optimizer steps")
    save_steps: int = Field(0, ge=0, description="save a checkpoint every N steps; 0 = only the "
                            "final adapter")
    probe_every: int = Field(0, ge=0, description="run the IWL/ICL/copy probes every N optimizer "
                             "steps (written to probes.json); 0 = never during training")
    train_limit: int | None = optional("keep only the first N training rows, for quick runs",
                                       "every row")

    @field_validator("train_limit")
    @classmethod
    def _train_limit_keeps_something(cls, value: int | None) -> int | None:
        return keeps_something(value, "training rows", "train on every row")


class EvalConfig(GenerationOptions):
    """Accuracy of one model (base, or base + adapter) on a version's `eval` set."""

    data: str = Field(description=DATA_HELP)
    model: str | None = optional(BASE_MODEL_HELP, "the base model recorded in the adapter's "
                                 "run_config.json")
    adapter: str | None = optional(ADAPTER_HELP, "no adapter: the base model alone")
    output: str | None = optional("JSON report; a PNG with the same stem is written next to it",
                                  "runs/eval/<task>-<version>-<label>.json")
    label: str | None = optional("name of this model in charts", "the adapter's regime, the "
                                 "--predictions file's name, or base")
    resamples: int = Field(1000, ge=1, description="bootstrap resamples of test items for the 95% "
                           "intervals")
    seed: int = Field(0, description="bootstrap seed")
    predictions: str | None = optional(
        'JSONL of {"id", "prediction"} per eval row (ids from the eval split), written by any '
        "other inference stack; scored without loading a model (leave --model/--adapter out)",
        "generate the predictions with the model")
    db_dir: str | None = optional("folder of the SQLite databases, <db_id>/<db_id>.sqlite "
                                  "(BIRD's layout); required by execution-accuracy tasks",
                                  "no SQL is run")
    sql_timeout: float = Field(30.0, gt=0.0, description="time limit of each SQL query, in "
                               "seconds, when scoring execution accuracy")


class ProbeConfig(GenerationOptions):
    """The IWL / ICL / copy probes of one model on a version's `probe` set."""

    data: str = Field(description=DATA_HELP)
    model: str | None = optional(BASE_MODEL_HELP, "the base model recorded in the adapter's "
                                 "run_config.json")
    adapter: str | None = optional(ADAPTER_HELP, "no adapter: the base model alone")
    output: str | None = optional("JSON result", "runs/probe/<regime>.json")
    step: int | None = optional("training step recorded with the scores",
                                "the adapter's final step, 0 for the base model")


class ModelServerConfig(Strict):
    """A base model (plus LoRA adapter) behind an OpenAI-compatible /v1/completions endpoint."""

    model: str | None = optional(BASE_MODEL_HELP, "the base model recorded in the adapter's "
                                 "run_config.json")
    adapter: str | None = optional(ADAPTER_HELP, "no adapter: the base model alone")
    name: str = Field("ictrain", description="model name the server reports")
    host: str = Field("127.0.0.1", description="address to listen on")
    port: int = Field(8080, ge=0, le=65535, description="port; 0 = any free one")
    device: Device = Field("auto", description="where to run: auto = CUDA when visible, else CPU")
    max_new_tokens: int = Field(64, ge=1, description="longest answer generated, in tokens (a request's "
                                "max_tokens may ask for fewer)")
    threads: int | None = optional("torch CPU threads; 1 is often fastest on a busy shared machine",
                                   "torch's default", ge=1)


class CompareConfig(Strict):
    """Several evaluation or probe reports drawn on one chart."""

    reports: list[str] = Field(description="report JSON files, each PATH or LABEL=PATH (LABEL "
                               "overrides the label the report carries)")
    output: str = Field(description="chart PNG; a JSON table of the plotted numbers goes next to it")
    kind: Literal["eval", "probe"] = Field("eval", description="eval = accuracy by similarity bin "
                                           "(Figure 3); probe = probe curves (Figure 4)")


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
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'config'}: "
                             f"{e['msg'].removeprefix('Value error, ')}" for e in err.errors())
        raise UserError(f"{yaml_path or 'command line'}: {problems}; fix these options") from None


def _base_type(annotation: Any) -> Any:
    """`int | None` -> int; Literal and plain types pass through."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0] if len(args) == 1 else str
    return annotation


def flag_help(info: FieldInfo) -> str:
    """The field's description and its default, as --help shows them (argparse %-escaped)."""
    if info.is_required():
        shown = "required, here or in --config"
    elif info.default is None:
        shown = f"default: {(info.json_schema_extra or {}).get('when_unset', 'unset')}"
    else:
        shown = f"default: {info.default}"
    text = f"{info.description} ({shown})" if info.description else f"({shown})"
    return text.replace("%", "%%")


def _add_field(parser: argparse.ArgumentParser, name: str, info: FieldInfo) -> None:
    flags = [f"--{name.replace('_', '-')}"] + ([f"--{name}"] if "_" in name else [])
    kind = _base_type(info.annotation)
    common = {"dest": name, "default": argparse.SUPPRESS, "help": flag_help(info)}
    if kind is bool:
        parser.add_argument(*flags, action=argparse.BooleanOptionalAction, **common)
    elif typing.get_origin(kind) is Literal:
        parser.add_argument(*flags, choices=typing.get_args(kind), **common)
    elif typing.get_origin(kind) is list:
        parser.add_argument(*flags, nargs="+", **common)
    else:
        metavar = {int: "N", float: "X"}.get(kind)
        parser.add_argument(*flags, type=kind if kind in (int, float) else str, metavar=metavar,
                            **common)


def build_parser(model_cls: type[Strict], description: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="YAML file of options (names as below, - or _); flags "
                        "given here override it (default: none)")
    for name, info in model_cls.model_fields.items():
        _add_field(parser, name, info)
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
