"""Probe scores at checkpoints during training: the score-vs-step curves of the paper's Figure 4."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from stages.base import write_json_atomically
from trainer.metrics import SimilarityFn
from trainer.probe import run_probes


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
            scores = run_probes(model, self.tokenizer, self.rows, self.similarity,
                                self.batch_size, self.max_new_tokens)
        finally:
            model.train(was_training)
            self.tokenizer.padding_side = "right"
        self.result["history"].append({"step": step, "scores": scores})
        write_json_atomically(self.output, self.result)

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if model is not None and state.is_world_process_zero:
            self._probe(model, state.global_step)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if model is not None and state.is_world_process_zero and state.global_step % self.every == 0:
            self._probe(model, state.global_step)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        if model is not None and state.is_world_process_zero:
            self._probe(model, state.global_step)
