"""Trainer throughput: tokens/s and peak memory of LoRA fine-tuning, per batching setting.

Runs the shipped `trainer/sft.py` settings (same SFTConfig, LoRA config and loss) on a random-init
model, in one process so the figures are comparable:

    python bench/bench_trainer.py                 # GPU: Llama-3.2-1B shape, bf16, SDPA
    python bench/bench_trainer.py --tiny          # CPU: 2-layer hidden-64 shape, fp32, smoke test
    python bench/bench_trainer.py --settings padded:2 grouped:16 padding_free:16 --attn flash_attention_2

A setting is BATCHING:MICRO_BATCH. Rows are pre-tokenised random ids whose lengths follow an
IC-Train-like spread (log-normal around --mean-len tokens, completion 10-25% of the row), the same
rows for every setting. Tokens/s counts real (non-pad) tokens, timed after --warmup steps; peak
memory is torch.cuda.max_memory_allocated on GPU and the process's peak RSS on CPU.
"""
from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

if __name__ == "__main__":  # `python bench/bench_trainer.py` from a checkout
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LLAMA_32_1B = dict(vocab_size=128256, hidden_size=2048, intermediate_size=8192, num_hidden_layers=16,
                   num_attention_heads=32, num_key_value_heads=8, head_dim=64,
                   max_position_embeddings=8192, rope_theta=500000.0, tie_word_embeddings=True)
TINY = dict(vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048)


def make_rows(n: int, mean_len: int, max_len: int, vocab: int, seed: int):
    """Pre-tokenised prompt/completion rows: input_ids plus a completion mask."""
    import numpy as np
    from datasets import Dataset

    rng = np.random.default_rng(seed)
    lengths = np.clip(rng.lognormal(np.log(mean_len), 0.35, size=n).astype(int), 16, max_len)
    shares = rng.uniform(0.10, 0.25, size=n)
    ids, masks = [], []
    for length, share in zip(lengths, shares):
        completion = max(2, int(length * share))
        ids.append(rng.integers(3, vocab, size=int(length)).tolist())
        masks.append([0] * (int(length) - completion) + [1] * completion)
    return Dataset.from_dict({"input_ids": ids, "completion_mask": masks}), int(lengths.sum())


def tiny_tokenizer():
    """Any tokenizer with pad/EOS works: rows are already token ids."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<s>": 1, "</s>": 2}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<pad>"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>",
                                   bos_token="<s>")


def random_model(shape: dict, settings, attn: str):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(**shape, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                         attn_implementation=attn)
    torch.manual_seed(0)
    with torch.device(settings.device):
        model = LlamaForCausalLM(config)
    return model.to(settings.dtype)


class Clock:
    """Starts timing after `warmup` optimizer steps; reads TRL's own count of real tokens."""

    def __init__(self, warmup: int):
        from transformers import TrainerCallback

        clock = self

        class Callback(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if state.global_step == warmup:
                    clock.mark()

        self.warmup, self.trainer, self.start = warmup, None, None
        self.callback = Callback()

    def mark(self) -> None:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.start = (time.perf_counter(), self.trainer._total_train_tokens)

    def rate(self) -> tuple[float, float, int]:
        import torch

        if torch.cuda.is_available():
            torch.cuda.synchronize()
        seconds = time.perf_counter() - self.start[0]
        tokens = self.trainer._total_train_tokens - self.start[1]
        return tokens / seconds, seconds, tokens


def run_setting(batching: str, batch: int, args, rows, shape, settings) -> dict:
    import torch
    from trl import SFTTrainer

    from trainer.config import TrainConfig
    from trainer.modeling import lora_config, peft_wrap_warning_silenced
    from trainer.sft import sft_arguments

    cfg = TrainConfig(data="-", model="-", batching=batching, batch_size=batch,
                      max_steps=args.warmup + args.steps, max_length=args.max_len,
                      logging_steps=10_000, lora_targets=args.lora_targets)
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = random_model(shape, settings, args.attn)
    clock = Clock(args.warmup)
    with tempfile.TemporaryDirectory() as out, peft_wrap_warning_silenced():
        trainer = SFTTrainer(model=model, args=sft_arguments(cfg, settings, Path(out)),
                             train_dataset=rows, processing_class=tiny_tokenizer(),
                             peft_config=lora_config(16, 16, 0.05, args.lora_targets),
                             callbacks=[clock.callback])
        clock.trainer = trainer
        trainer.train()
        tokens_per_s, seconds, tokens = clock.rate()
    peak = (torch.cuda.max_memory_allocated() if torch.cuda.is_available()
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
    del trainer, model
    return {"setting": f"{batching}:{batch}", "tokens_per_s": round(tokens_per_s, 1),
            "timed_steps": args.steps, "timed_tokens": tokens, "seconds": round(seconds, 2),
            "peak_memory_gib": round(peak / 2**30, 2)}


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tiny", action="store_true", help="tiny shape on CPU (testable anywhere)")
    parser.add_argument("--settings", nargs="+")
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--mean-len", type=int)
    parser.add_argument("--max-len", type=int, default=1024)
    parser.add_argument("--lora-targets", choices=["qkv", "all"], default="qkv")
    parser.add_argument("--threads", type=int, help="torch CPU threads")
    parser.add_argument("--attn", default="sdpa", help="attention implementation (sdpa, eager, "
                        "flash_attention_2 where installed)")
    parser.add_argument("--output", help="write the figures as JSON here")
    args = parser.parse_args(argv)

    from trainer.modeling import device_settings, set_threads

    set_threads(args.threads)
    settings = device_settings("cpu" if args.tiny else "auto")
    shape = TINY if args.tiny else LLAMA_32_1B
    mean_len = args.mean_len or (96 if args.tiny else 384)
    chosen = args.settings or ["padded:2", "grouped:16", "grouped:32", "padding_free:16"]
    largest = max(int(s.split(":")[1]) for s in chosen)
    rows, _ = make_rows((args.warmup + args.steps) * largest, mean_len, args.max_len,
                        shape["vocab_size"], seed=0)
    results = []
    for spec in chosen:
        batching, batch = spec.split(":")
        result = run_setting(batching, int(batch), args, rows, shape, settings)
        results.append(result)
        print(json.dumps(result), flush=True)
    base = results[0]["tokens_per_s"]
    for result in results:
        result["speedup_vs_first"] = round(result["tokens_per_s"] / base, 2)
    header = {"device": settings.device, "dtype": settings.dtype_name,
              "shape": "tiny" if args.tiny else "llama-3.2-1b", "mean_len": mean_len,
              "lora_targets": args.lora_targets, "attn": args.attn}
    if settings.device == "cuda":
        import torch

        header["gpu"] = torch.cuda.get_device_name(0)
    for result in results:
        print(f"{result['setting']:>18}: {result['tokens_per_s']:>10.1f} tok/s  "
              f"x{result['speedup_vs_first']:<5} peak {result['peak_memory_gib']} GiB")
    if args.output:
        Path(args.output).write_text(json.dumps({**header, "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
