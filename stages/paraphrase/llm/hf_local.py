"""`hf-local`: a local transformers causal LM (a folder with config.json and weights), for users
with a GPU and no API. Same prompts, cache and quality filter as the API backends.

One source per prompt (small models keep several sentences apart badly), `batch_size` prompts per
generate call, left padding, prompts sorted by length so a batch pads little. With greedy decoding
(temperature 0, the default) the output is a function of the inputs, so a junk answer is cached as
a failure too and never regenerated; with sampling, failures are asked again on the next run.
"""
from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from schemas.errors import UserError
from stages.paraphrase.base import register
from stages.paraphrase.llm.backend import LLMBackend
from stages.paraphrase.llm.cache import AnswerCache
from stages.paraphrase.llm.engine import EngineResult
from stages.paraphrase.llm.pricing import estimate_output_tokens, estimate_tokens
from stages.paraphrase.llm.prompts import MalformedAnswer, parse_answer


@register
class HFLocalBackend(LLMBackend):
    name = "hf-local"
    default_batch_size = 8

    @property
    def model(self) -> str:
        return self.opts.model_path or self.opts.model or ""

    @property
    def sampling(self) -> bool:
        return bool(self.opts.temperature)

    @property
    def device(self) -> str:
        return self.opts.device or self.context.device or "cpu"

    def generation_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {"temperature": self.opts.temperature or 0.0, "max_new_tokens": self.opts.max_new_tokens}
        if self.sampling:
            params["seed"] = self.opts.seed
        return params

    def model_identity(self) -> str:
        """The folder's config.json content and its files' names and sizes: weights too large to hash
        still change the identity when they are replaced."""
        folder = Path(self.model)
        if not folder.is_dir():
            return self.model
        digest = hashlib.sha256()
        for path in sorted(p for p in folder.rglob("*") if p.is_file()):
            digest.update(f"{path.relative_to(folder)}\x00{path.stat().st_size}\n".encode())
        if (folder / "config.json").exists():
            digest.update((folder / "config.json").read_bytes())
        return f"{folder.name}@{digest.hexdigest()[:16]}"

    def _check_backend(self) -> None:
        folder = Path(self.model)
        if not (folder / "config.json").exists():
            raise UserError(f"{folder}: no config.json there; model_path must be a local transformers model folder")
        try:
            import torch
            import transformers  # noqa: F401
        except ImportError:
            raise UserError("paraphraser 'hf-local' needs torch and transformers: pip install 'ictrain[train]'") from None
        if self.device.startswith("cuda") and not torch.cuda.is_available():
            raise UserError(f"device {self.device!r} asked for but no CUDA GPU is visible; use --device cpu")

    def _load(self) -> tuple[Any, Any]:
        import torch
        import transformers
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(self.model)
        tokenizer.padding_side = "left"
        if tokenizer.pad_token is None:
            tokenizer.pad_token = tokenizer.eos_token
        dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        major_minor = tuple(int(part) for part in transformers.__version__.split(".")[:2])
        dtype_arg = "dtype" if major_minor >= (4, 56) else "torch_dtype"  # renamed in 4.56
        model = AutoModelForCausalLM.from_pretrained(self.model, **{dtype_arg: dtype}).to(self.device).eval()
        return tokenizer, model

    def _prompt(self, tokenizer: Any, source: str, n: int) -> str:
        text = self.template.render([source], n)
        if getattr(tokenizer, "chat_template", None):
            return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                                 add_generation_prompt=True)
        return text

    def _fetch(self, pending: list[tuple[str, str]], n: int, cache: AnswerCache) -> EngineResult:
        tokenizer, model = self._load()
        result = EngineResult(counters={"requests": 0, "tokens_in": 0, "tokens_out": 0, "cost_usd": 0.0, "retries": 0})
        ordered = sorted(pending, key=lambda item: len(item[1]))
        batches = [ordered[i:i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        for batch in tqdm(batches, desc="paraphrase (local)", unit="batch", disable=not self.context.progress):
            texts = self._generate(tokenizer, model, [self._prompt(tokenizer, s, n) for _, s in batch], result)
            records = {}
            for (key, source), text in zip(batch, texts):
                record = self._read(source, text, n)
                if "failure" in record and self.sampling:
                    result.failures[key] = record["failure"]  # sampling may do better next time
                else:
                    records[key] = record
            cache.put_many(records)
            result.answers.update(records)
        return result

    def _read(self, source: str, text: str, n: int) -> dict[str, Any]:
        try:
            found, missing = parse_answer(self.template, text, 1, n)
        except MalformedAnswer:
            return {"paraphrases": [], "failure": "malformed response"}
        if 0 in found:
            return self.make_record(source, found[0])
        return {"paraphrases": [], "failure": missing.get(0, "malformed response")}

    def _generate(self, tokenizer: Any, model: Any, prompts: list[str], result: EngineResult) -> list[str]:
        import torch

        templated = bool(getattr(tokenizer, "chat_template", None))  # a chat template already adds BOS
        encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=not templated).to(self.device)
        kwargs: dict[str, Any] = {"max_new_tokens": self.opts.max_new_tokens, "pad_token_id": tokenizer.pad_token_id}
        if self.sampling:
            kwargs.update(do_sample=True, temperature=self.opts.temperature)
        else:
            kwargs.update(do_sample=False)
        devices = [torch.device(self.device).index or 0] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(self.opts.seed)  # local to this call: the global RNG is restored after
            output = model.generate(**encoded, **kwargs)
        new_tokens = output[:, encoded["input_ids"].shape[1]:]
        result.counters["requests"] += 1
        result.counters["tokens_in"] += int(encoded["attention_mask"].sum())
        result.counters["tokens_out"] += int((new_tokens != tokenizer.pad_token_id).sum())
        return tokenizer.batch_decode(new_tokens, skip_special_tokens=True)

    def estimate(self, sources: list[str], n: int) -> dict[str, Any]:
        unique, todo = self._todo(sources, n)
        return {"items": len(unique), "cached_items": len(unique) - len(todo),
                "requests": -(-len(todo) // self.batch_size),
                "tokens_in": sum(estimate_tokens(self.template.render([s], n)) for s in todo),
                "tokens_out": sum(estimate_output_tokens([s], n) for s in todo), "cost_usd": 0.0,
                "note": "local model: no API cost; tokens estimated at ~4 characters per token"}

    def price(self):
        return None
