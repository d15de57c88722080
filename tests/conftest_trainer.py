"""Fixtures of the trainer tests: a tiny align-synth-like version folder written by hand with the
pipeline's row schemas, and a tiny random-init Llama with a tokenizer trained on that data.

Not a conftest.py on purpose (others own that name); the test modules import from here.
Task: inputs are 3-4 distinct symbols of A..H ("C A F"); each symbol emits a fixed syllable and
the output lists the syllables of the input's symbols in one fixed symbol order ("mi ka ri").
"""
from __future__ import annotations

import itertools
import json
import os
from pathlib import Path

import numpy as np

from schemas.rows import EVAL_SCHEMA, PROBE_SCHEMA, TRAIN_SCHEMA

EMISSIONS = {"A": "ka", "B": "lo", "C": "mi", "D": "nu", "E": "po", "F": "ri", "G": "su", "H": "te"}
OUTPUT_ORDER = "DHAFCBGE"
K = 2
HEADER = "Consider the following {n} examples of the align task."
EXAMPLE = "Example {i}:\nInput: {source}\nOutput: {target}"
QUERY = "Map the input to its output.\nInput: {source}\nOutput:"


def output_of(source: str) -> str:
    symbols = set(source.split())
    return " ".join(EMISSIONS[s] for s in OUTPUT_ORDER if s in symbols)


def cosine(a: str, b: str) -> float:
    x, y = set(a.split()), set(b.split())
    return len(x & y) / float(np.sqrt(len(x) * len(y)))


def render(examples: list[dict], source: str) -> str:
    if not examples:
        return QUERY.format(source=source)
    parts = [HEADER.format(n=len(examples))]
    parts += [EXAMPLE.format(i=i, source=e["source"], target=e["target"])
              for i, e in enumerate(examples, start=1)]
    return "\n".join(parts + [QUERY.format(source=source)])


def make_pairs(rng) -> list[dict]:
    sets = [c for n in (3, 4) for c in itertools.combinations("ABCDEFGH", n)]
    order = rng.permutation(len(sets))
    pairs = []
    for rank, index in enumerate(order):
        symbols = list(sets[index])
        rng.shuffle(symbols)
        source = " ".join(symbols)
        pairs.append({"id": f"p{rank}", "source": source, "target": output_of(source)})
    return pairs


def example(pair: dict, source: str, origin: str, target: str | None = None) -> dict:
    sim = cosine(pair["source"], source)
    return {"id": pair["id"], "source": pair["source"], "target": target or pair["target"],
            "origin": origin, "bm25": float(len(set(pair["source"].split()) & set(source.split()))),
            "cosine": sim}


def context(kind: str, target: dict, pool: list[dict], rng) -> list[dict]:
    others = [p for p in pool if p["source"] != target["source"]]
    randoms = [example(others[i], target["source"], "random")
               for i in rng.choice(len(others), size=K, replace=False)]
    if kind in ("zero",):
        return []
    if kind == "random":
        return randoms
    ranked = sorted(others, key=lambda p: -cosine(p["source"], target["source"]))
    if kind in ("similar", "topk"):
        return [example(p, target["source"], "similar") for p in ranked[:K]]
    if kind in ("near", "one_near"):
        close = example(ranked[0], target["source"], "near")
    else:  # a paraphrase: the target's symbols reshuffled, carrying the gold label
        symbols = target["source"].split()[::-1]
        close = example({"id": f"{target['id']}-para", "source": " ".join(symbols),
                         "target": target["target"]}, target["source"], "paraphrase")
    position = int(rng.integers(0, K))
    return randoms[:position] + [close] + randoms[position:K - 1]


def row(target: dict, regime: str, kind: str, examples: list[dict], suffix: str) -> dict:
    return {"id": f"{target['id']}-{suffix}", "target_id": target["id"], "source": target["source"],
            "target": target["target"], "regime": regime, "context_kind": kind,
            "examples": examples, "max_sim": max((e["cosine"] for e in examples), default=0.0),
            "prompt": render(examples, target["source"]), "completion": " " + target["target"]}


def train_rows(regime: str, pool: list[dict], rng) -> list[dict]:
    kinds = ["random", "similar", "near", "paraphrase"]
    out = []
    for target in pool:
        kind = regime if regime != "contrastive" else kinds[int(rng.choice(4, p=[.2, .2, .5, .1]))]
        out.append(row(target, regime, kind, context(kind, target, pool, rng), regime))
    return out


def eval_rows(tests: list[tuple[str, dict]], pool: list[dict], rng) -> list[dict]:
    out = []
    for test_set, target in tests:
        for kind in ("random", "topk", "one_near", "paraphrase"):
            r = row(target, "eval", kind, context(kind, target, pool, rng), kind)
            out.append({**r, "test_set": test_set, "eval_context": kind})
    return out


def probe_rows(tests: list[tuple[str, dict]], pool: list[dict], rng) -> list[dict]:
    out = []
    for test_set, target in tests:
        similar = context("paraphrase", target, pool, rng)
        position = next(i for i, e in enumerate(similar) if e["origin"] == "paraphrase")
        labels = [e["target"] for e in similar]
        shuffled = [{**e, "target": labels[(i + 1) % K]} for i, e in enumerate(similar)]
        for probe, examples, pos in (("zero", [], -1), ("random", context("random", target, pool, rng), -1),
                                     ("one_similar", similar, position), ("shuffled", shuffled, position)):
            r = row(target, "probe", probe, examples, probe)
            r["prompt"] = render(examples, target["source"])
            out.append({**r, "test_set": test_set, "probe": probe, "paraphrase_position": pos})
    return out


def save_split(rows: list[dict], schema, folder: Path) -> None:
    import pyarrow as pa
    from datasets import Dataset

    Dataset(pa.Table.from_pylist(rows, schema=schema)).save_to_disk(str(folder))


def write_version(root: Path, seed: int = 0, pool_size: int = 60, test_size: int = 6,
                  ood_size: int = 3, probe_size: int = 4) -> Path:
    """`root/align-tiny/<version>/` with every split and a manifest; returns the `latest` link."""
    rng = np.random.default_rng(seed)
    pairs = make_pairs(rng)
    pool = pairs[:pool_size]
    tests = [("id", p) for p in pairs[pool_size:pool_size + test_size]]
    tests += [("ood", p) for p in pairs[pool_size + test_size:pool_size + test_size + ood_size]]
    version = f"v{seed:04d}tiny"
    folder = root / "align-tiny" / version
    for regime in ("zero", "random", "similar", "contrastive"):
        save_split(train_rows(regime, pool, rng), TRAIN_SCHEMA, folder / f"train-{regime}")
    save_split(eval_rows(tests, pool, rng), EVAL_SCHEMA, folder / "eval")
    probed = tests[:probe_size // 2] + [t for t in tests if t[0] == "ood"][:probe_size - probe_size // 2]
    save_split(probe_rows(probed, pool, rng), PROBE_SCHEMA, folder / "probe")
    manifest = {"task": "align-tiny", "version": version, "package_version": "test",
                "config": {"task": {"name": "align-tiny", "metric": "exact_match"}, "k": K},
                "inputs": {}, "created": "2025-01-01T00:00:00Z", "stages": {}}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    link = root / "align-tiny" / "latest"
    os.symlink(version, link)
    return link


def corpus_texts(version_folder: Path) -> list[str]:
    from datasets import load_from_disk

    texts = []
    for split in ("train-contrastive", "train-zero", "eval", "probe"):
        data = load_from_disk(str(version_folder / split))
        texts += [p + c for p, c in zip(data["prompt"], data["completion"])]
    return texts


def write_tiny_model(folder: Path, texts: list[str], seed: int = 0) -> Path:
    """A 2-layer, hidden-64 Llama with random weights and a byte-level BPE trained on `texts`."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>",
                                        pad_token="<pad>")
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128,
                         num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, pad_token_id=tokenizer.pad_token_id,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    LlamaForCausalLM(config).save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def tiny_workspace(tmp_path_factory, name: str):
    """Generator for a module-scoped fixture: a hand-written version folder and a tiny model
    trained on its texts, with torch on one thread for the module's duration."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp(name)
    link = write_version(root / "data")
    model = write_tiny_model(root / "model", corpus_texts(link.resolve()))
    yield {"root": root, "data": str(link), "model": str(model)}
    torch.set_num_threads(before)
