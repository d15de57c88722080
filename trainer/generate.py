"""Batched greedy generation that stops each row at the end of its first line or at EOS.

Answers in every dataset end at the end of a line, so a row is finished as soon as it emits any
token containing a newline; prompts are sorted by length so left-padded batches waste little.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from trainer.progress import Progress


@lru_cache(maxsize=8)
def _newline_token_ids(tokenizer) -> tuple[int, ...]:
    pieces = tokenizer.batch_decode([[i] for i in range(len(tokenizer))])
    return tuple(i for i, piece in enumerate(pieces) if "\n" in piece)


def _line_stop(tokenizer, prompt_width: int):
    """A stopping criterion that is true, per row, once the row has produced a newline token."""
    import torch
    from transformers import StoppingCriteria

    newline_ids = torch.tensor(_newline_token_ids(tokenizer), dtype=torch.long)

    class LineStop(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            generated = input_ids[:, prompt_width:]
            if generated.shape[1] == 0 or newline_ids.numel() == 0:
                return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
            last = generated[:, -1]
            return torch.isin(last, newline_ids.to(last.device))

    return LineStop()


def first_line(text: str) -> str:
    return text.split("\n", 1)[0].strip()


def _generate_batch(model, tokenizer, prompts: list[str], max_new_tokens: int) -> list[str]:
    import torch
    from transformers import StoppingCriteriaList

    device = next(model.parameters()).device
    batch = tokenizer(prompts, return_tensors="pt", padding=True).to(device)
    width = batch["input_ids"].shape[1]
    with torch.inference_mode():
        output = model.generate(
            **batch, do_sample=False, max_new_tokens=max_new_tokens,
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
            stopping_criteria=StoppingCriteriaList([_line_stop(tokenizer, width)]))
    return [first_line(text) for text in
            tokenizer.batch_decode(output[:, width:], skip_special_tokens=True)]


def generate_answers(model, tokenizer, prompts: list[str], batch_size: int = 16,
                     max_new_tokens: int = 64, label: str = "generating") -> list[str]:
    """Greedy answers to `prompts`, in their order: the first generated line, stripped.
    Progress (`label`: answers done, ETA) goes to stderr, as a bar or as lines (trainer.progress)."""
    if not prompts:
        return []
    tokenizer.padding_side = "left"
    order = np.argsort([-len(p) for p in prompts], kind="stable")
    answers: list[str] = [""] * len(prompts)
    with Progress(len(prompts), label, unit="answer") as progress:
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            texts = _generate_batch(model, tokenizer, [prompts[i] for i in chunk], max_new_tokens)
            for index, text in zip(chunk, texts):
                answers[int(index)] = text
            progress.update(len(chunk))
    return answers


def answer_one(model, tokenizer, prompt: str, max_new_tokens: int = 64) -> str:
    """The greedy answer to one prompt, as `generate_answers` gives it, without progress output
    (a server answers one request at a time)."""
    return _generate_batch(model, tokenizer, [prompt], max_new_tokens)[0]
