"""Training callbacks: probe scores at checkpoints (the score-vs-step curves of the paper's
Figure 4), and plain progress lines for runs whose stderr is not a terminal."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from stages.base import write_json_atomically
from trainer.metrics import SimilarityFn
from trainer.probe import run_probes
from trainer.progress import Progress, say


class ProbeCallback(TrainerCallback):
    """Runs the probes before the first step, every `every` optimizer steps and after the last,
    appending each result to a JSON history (rewritten atomically, so a crash keeps past points)."""

    def __init__(self, rows: list[dict[str, Any]], tokenizer, similarity: SimilarityFn, every: int,
                 output: Path, header: dict[str, Any], batch_size: int = 16,
                 max_new_tokens: int = 64):
        self.rows, self.tokenizer, self.similarity = rows, tokenizer, similarity
        self.every, self.output = every, Path(output)
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens
        self.result = {**header, "history": []}

    def _probe(self, model, step: int) -> None:
        if any(point["step"] == step for point in self.result["history"]):
            return
        was_training = model.training
        model.eval()
        try:
            point = run_probes(model, self.tokenizer, self.rows, self.similarity,
                                self.batch_size, self.max_new_tokens, f"probes at step {step}")
        finally:
            model.train(was_training)
            self.tokenizer.padding_side = "right"
        self.result["history"].append({"step": step, **point})
        write_json_atomically(self.output, self.result)

    def _at_probe_point(self, args, state, model) -> None:
        """Probes on the main process only. Under a data-parallel launch the other processes
        wait at a barrier meanwhile (every process reaches the same probe points), so none runs
        ahead into a gradient all-reduce, or out of training, while the main one generates."""
        if model is not None and state.is_world_process_zero:
            self._probe(model, state.global_step)
        if args.world_size > 1:
            args.distributed_state.wait_for_everyone()

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self._at_probe_point(args, state, model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if state.global_step % self.every == 0:
            self._at_probe_point(args, state, model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self._at_probe_point(args, state, model)


class ProgressLines(TrainerCallback):
    """One line every 10% of the optimizer steps, with an ETA and the last logged loss, and each
    log record as a line. Used when stderr is not a terminal, in place of the Trainer's printer
    (which writes dicts to stdout); on a terminal the Trainer's own tqdm bar shows the same."""

    def __init__(self):
        self.progress: Progress | None = None
        self.loss: float | None = None

    def on_train_begin(self, args, state, control, **kwargs):
        self.progress = Progress(state.max_steps, "training", unit="step", bar=False)

    def on_log(self, args, state, control, logs=None, **kwargs):
        """The Trainer's log record as one line on stderr (in place of its dict on stdout)."""
        if not logs or not state.is_world_process_zero:
            return
        if "loss" in logs:
            self.loss = logs["loss"]
        shown = ", ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
                          for key, value in logs.items())
        say(f"log at step {state.global_step}: {shown}")

    def on_step_end(self, args, state, control, **kwargs):
        if self.progress is not None and state.is_world_process_zero:
            note = f"loss {self.loss:.4f}" if self.loss is not None else ""
            self.progress.advance_to(state.global_step, note)
