r"""Fine-tune a LoRA adapter on one regime of a built dataset version, with TRL's SFTTrainer.

Usage:

    # the paper's setting: LoRA r=16 alpha=16 dropout 0.05 on q/k/v, AdamW lr 2e-4, linear decay,
    # batch 2 per device, completion-only loss
    python trainer/sft.py --data runs/align-synth/latest --regime contrastive \
        --model models/smollm2-135m --output-dir runs/train/contrastive
    # LoRA on every attention and MLP projection, a YAML file for the rest
    python trainer/sft.py --config train.yaml --lora-targets all
    # probe curves during training (paper Figure 4): IWL / ICL / copy every 50 steps
    python trainer/sft.py ... --probe-every 50 --limit 100
    # GPU throughput: length-grouped padded batches at a larger micro-batch (the fast setting
    # with SDPA; note the effective batch grows too, so the optimiser sees fewer, larger steps)
    python trainer/sft.py ... --batching grouped --batch-size 16
    # padding-free batches (no pad tokens; each row attends only to itself): fastest with a
    # varlen attention kernel, e.g. --attn-implementation flash_attention_2 where installed
    python trainer/sft.py ... --batching padding_free --batch-size 16
    # data-parallel on N GPUs (N processes, each its own --batch-size; one output folder)
    accelerate launch --multi_gpu --num_processes N --num_machines 1 --mixed_precision no \
        --dynamo_backend no trainer/sft.py ... --batching grouped --batch-size 16

Before training it prints token-length statistics of the split, drops rows whose prompt +
completion + EOS exceed --max-length (counted, never trained with every label masked) and refuses
to start when more than --max-drop-share of the rows would go. CPU runs use fp32 and no gradient
checkpointing; CUDA runs use bf16 and SDPA attention. The output folder holds the adapter,
`run_config.json` (resolved config with the base model as an absolute path, dataset version,
length report, loss history, world size and effective batch) and, with --probe-every,
`probes.json`. Under `accelerate launch` every process trains on its own share of each global
batch (--batch-size x --grad-accum rows per process per step) and only the main one prints the
length report and writes the output folder. Paths and the split's size
(from the manifest) are checked before torch loads; progress goes to stderr (trainer.progress).
"""
from __future__ import annotations

if __name__ == "__main__" and not __package__:  # `python trainer/sft.py` from a checkout
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stages.base import write_json_atomically
from trainer.config import TrainConfig, run_cli
from trainer.data import Version, fit_to_length, open_version, training_rows
from trainer.metrics import comet_checkpoint
from trainer.modeling import (RUN_CONFIG, DeviceSettings, device_settings, load_model,
                              load_tokenizer, lora_config, model_folder, peft_wrap_warning_silenced,
                              set_threads)
from trainer.progress import on_terminal, say


def output_folder(cfg: TrainConfig, version: Version) -> Path:
    if cfg.output_dir:
        return Path(cfg.output_dir)
    return Path("runs") / "train" / f"{version.task}-{version.version[:12]}-{cfg.regime}"


def batching_options(cfg: TrainConfig) -> dict[str, Any]:
    """TRL/Trainer fields per batching mode; all three optimise the same per-token loss.

    `padded`: random batches padded to their longest row (the paper's plain setting).
    `grouped`: rows of similar length batched together, so little padding at a large batch.
    `padding_free`: rows of a batch concatenated into one sequence with restarting position_ids;
    transformers turns those into a block-diagonal mask, so no row attends to another. Rows were
    already cut to `max_length` by `fit_to_length`, which TRL requires here (max_length=None).
    With SDPA that mask is dense over the whole flattened batch (cost grows with the square of
    batch x length), so padding_free pays off only with a varlen kernel (flash_attention_2);
    with SDPA, `grouped` is the fast setting (see bench/bench_trainer.py)."""
    if cfg.batching == "padding_free":
        return {"padding_free": True, "max_length": None}
    options: dict[str, Any] = {"padding_free": False, "max_length": cfg.max_length}
    if cfg.batching == "grouped":
        options["train_sampling_strategy"] = "group_by_length"
    return options


def sft_arguments(cfg: TrainConfig, settings: DeviceSettings, output: Path, bar: bool = False):
    """TRL's arguments; `bar`: the Trainer draws its tqdm bar (stderr is a terminal).

    Under a data-parallel launch the LoRA weights all take part in every forward pass, so DDP
    need not search the graph for unused parameters (the Trainer would, for a PEFT model)."""
    from trl import SFTConfig

    return SFTConfig(
        output_dir=str(output), per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum, learning_rate=cfg.learning_rate,
        lr_scheduler_type="linear", warmup_steps=0, optim="adamw_torch", weight_decay=0.0,
        num_train_epochs=cfg.epochs, max_steps=cfg.max_steps, seed=cfg.seed, data_seed=cfg.seed,
        bf16=settings.bf16, fp16=False, activation_checkpointing=False,
        use_cpu=settings.device == "cpu", completion_only_loss=True,
        logging_steps=cfg.logging_steps, logging_first_step=True,
        save_strategy="steps" if cfg.save_steps > 0 else "no",
        save_steps=cfg.save_steps if cfg.save_steps > 0 else 500,
        report_to="none", disable_tqdm=not bar, dataloader_num_workers=0,
        ddp_find_unused_parameters=False, **batching_options(cfg))


@dataclass(frozen=True)
class Processes:
    """This process's place in a data-parallel launch (`accelerate launch --num_processes N`);
    a plain `python trainer/sft.py` is one main process. Read from TRL's arguments, whose device
    setup joins the process group (gloo on CPU, NCCL on GPUs) and picks this process's device."""

    world_size: int
    is_main: bool
    device: str

    @classmethod
    def of(cls, args) -> "Processes":
        device = str(args.device)  # first: sets up the devices and the process group
        return cls(args.world_size, args.process_index == 0, device)

    def say(self, message: str) -> None:
        """A status line from the main process only, so N processes print one set of lines."""
        if self.is_main:
            say(message)


def effective_batch(cfg: TrainConfig, world_size: int) -> int:
    """Rows per optimizer step: every process takes --batch-size rows --grad-accum times."""
    return cfg.batch_size * cfg.grad_accum * world_size


def probe_callback(cfg: TrainConfig, tokenizer, output: Path, version: Version, is_main: bool = True):
    """Probes run on the main process only (the others wait at a barrier), so only it builds the
    similarity: COMET-22 is a large model, and N copies of it would only take memory."""
    from trainer.callbacks import ProbeCallback
    from trainer.metrics import chrf_similarity, similarity_function
    from trainer.probe import probe_rows

    header = {"regime": cfg.regime, "model": cfg.model, "dataset": version.identity(),
              "similarity": "comet" if cfg.comet_path else "chrf", "every": cfg.probe_every}
    similarity = similarity_function(cfg.comet_path) if is_main else chrf_similarity  # never called there
    return ProbeCallback(probe_rows(cfg.data, cfg.limit), tokenizer, similarity, cfg.probe_every,
                         output / "probes.json", header, cfg.gen_batch_size, cfg.max_new_tokens)


def print_lengths(report: dict[str, Any]) -> None:
    print(f"token lengths (prompt+completion+EOS): {report['total_tokens']}")
    print(f"completion lengths: {report['completion_tokens']}")
    print(f"dropped {report['dropped']} of {report['rows']} rows longer than "
          f"max_length={report['max_length']} ({report['dropped_share']:.2%})")


def check_inputs(cfg: TrainConfig) -> tuple[TrainConfig, Version]:
    """Every path checked from the files alone, before torch is imported; the config comes back
    with the base model as an absolute path, so the adapter's record works from any folder."""
    version = open_version(cfg.data)
    model = model_folder(cfg.model)
    if cfg.comet_path and cfg.probe_every > 0:
        comet_checkpoint(cfg.comet_path)
    return cfg.model_copy(update={"model": model}), version


def make_trainer(cfg: TrainConfig, version: Version, rows, tokenizer, settings: DeviceSettings,
                 args, processes: Processes):
    """TRL's trainer over the LoRA-wrapped model, loaded straight onto this process's device
    (under N processes on GPUs, each its own card, not all onto the first)."""
    from trl import SFTTrainer

    from trainer.callbacks import ProgressLines

    bar = not args.disable_tqdm
    callbacks = [] if bar else [ProgressLines()]
    if cfg.probe_every > 0:
        callbacks.append(probe_callback(cfg, tokenizer, Path(args.output_dir), version, processes.is_main))
    processes.say(f"loading model {cfg.model} on {processes.device} ({settings.dtype_name})")
    model = load_model(cfg.model, settings, cfg.attn_implementation, processes.device)
    processes.say(f"adding LoRA (r={cfg.lora_r}, {cfg.lora_targets}) and tokenising {len(rows)} "
                  "rows for TRL")
    with peft_wrap_warning_silenced():
        trainer = SFTTrainer(model=model, args=args, train_dataset=rows, processing_class=tokenizer,
                             peft_config=lora_config(cfg.lora_r, cfg.lora_alpha, cfg.lora_dropout,
                                                     cfg.lora_targets), callbacks=callbacks)
    if not bar:  # ProgressLines logs to stderr; the printer would put dicts on stdout
        from transformers.trainer_callback import PrinterCallback

        trainer.remove_callback(PrinterCallback)
    return trainer


def run_record(cfg: TrainConfig, given_model: str, version: Version, settings: DeviceSettings,
               processes: Processes, lengths: dict[str, Any], trainer, result,
               seconds: float) -> dict[str, Any]:
    """What run_config.json holds: enough to reload the adapter and to compare runs."""
    return {"config": cfg.model_dump(), "base_model": {"path": cfg.model, "given": given_model},
            "dataset": version.identity(), "device": settings.device,
            "dtype": settings.dtype_name, "lengths": lengths,
            "world_size": processes.world_size,
            "effective_batch": effective_batch(cfg, processes.world_size),
            "train": {"steps": trainer.state.global_step, "seconds": round(seconds, 2),
                      "train_loss": result.training_loss},
            "log_history": trainer.state.log_history}


def train(cfg: TrainConfig) -> tuple[Any, dict[str, Any]]:
    """Train and save; returns the trainer and the run record written next to the adapter.
    Every process of a launch runs this; only the main one prints results and writes files."""
    given_model = cfg.model
    cfg, version = check_inputs(cfg)
    rows = training_rows(version, cfg.regime, cfg.train_limit)
    settings = device_settings(cfg.device)
    output = output_folder(cfg, version)
    args = sft_arguments(cfg, settings, output, on_terminal())
    processes = Processes.of(args)
    set_threads(cfg.threads)  # after the process group: accelerate may set its own count there
    processes.say(f"data: {version.task} version {version.version}, train-{cfg.regime}, "
                  f"{len(rows)} rows; {processes.world_size} process(es), "
                  f"{effective_batch(cfg, processes.world_size)} rows per optimizer step")
    tokenizer = load_tokenizer(cfg.model, padding_side="right")
    processes.say(f"tokenising {len(rows)} rows to check their lengths against --max-length "
                  f"{cfg.max_length}")
    rows, lengths = fit_to_length(rows, tokenizer, cfg.max_length, cfg.max_drop_share)
    if processes.is_main:
        print_lengths(lengths.to_json())
    trainer = make_trainer(cfg, version, rows, tokenizer, settings, args, processes)
    processes.say(f"training {len(rows)} rows; adapter goes to {output}")
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started
    trainer.save_model(str(output))  # writes on the main process only
    record = run_record(cfg, given_model, version, settings, processes, lengths.to_json(), trainer,
                        result, seconds)
    if processes.is_main:
        write_json_atomically(output / RUN_CONFIG, json.loads(json.dumps(record, default=str)))
        print(f"adapter and {RUN_CONFIG}: {output}")
    return trainer, record


def main(cfg: TrainConfig) -> dict[str, Any]:
    return train(cfg)[1]


def cli(argv: list[str] | None = None) -> int:
    return run_cli(TrainConfig, main, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
