r"""The IWL, ICL and copy probes of docs/design.md section 3, on a version's `probe` set.

Usage:

    python trainer/probe.py --data runs/align-synth/latest --adapter runs/train/contrastive \
        --output runs/probe/contrastive.json [--comet-path CKPT]

Probe rows come in groups sharing `target_id`, one per probe kind. For each group:
  IWL  = sim(output under `random`, output under `zero`);
  ICL  = sum_i w_i sim(output under `one_similar`, label_i), w_i = the example's cosine to x,
         normalised over the context (uniform when every cosine is <= 0);
  copy = max over i != paraphrase position of sim(output under `shuffled`, shown label_i).
`copy_nongold` also leaves out the position that now shows the gold label, since an output equal
to the gold answer (learnt in weights) would otherwise count as copying.
An empty output is no answer: it scores 0 against anything, another empty output included (so two
empty outputs under `random` and `zero` give IWL 0, not a perfect match); see trainer.metrics.
During training the same scores come from `trainer.callbacks.ProbeCallback`. Each history point
holds the means (`scores`) and every group's own scores (`items`), for intervals over items.
"""
from __future__ import annotations

if __name__ == "__main__" and not __package__:  # `python trainer/probe.py` from a checkout
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from schemas.errors import UserError
from stages.base import write_json_atomically
from trainer.config import ProbeConfig, run_cli
from trainer.data import first_items, load_split, open_version
from trainer.generate import generate_answers
from trainer.metrics import SimilarityFn, score_answers, similarity_function
from trainer.modeling import inference_paths, load_for_inference, read_run_config, set_threads
from trainer.progress import say

PROBE_NAMES = ("iwl", "icl", "copy", "copy_nongold")


def context_weights(cosines: list[float]) -> np.ndarray:
    """Example weights for the ICL score: cosines clipped at 0 and normalised to sum to 1."""
    values = np.clip(np.asarray(cosines, dtype=np.float64), 0.0, None)
    total = values.sum()
    return values / total if total > 0 else np.full(len(values), 1.0 / max(len(values), 1))


def _groups(rows: list[dict[str, Any]]) -> dict[str, dict[str, int]]:
    """target_id -> probe kind -> row index; groups missing a kind are left out."""
    groups: dict[str, dict[str, int]] = defaultdict(dict)
    for index, row in enumerate(rows):
        groups[f"{row['test_set']}/{row['target_id']}"][row["probe"]] = index
    needed = {"zero", "random", "one_similar", "shuffled"}
    return {key: kinds for key, kinds in groups.items() if needed <= kinds.keys()}


def _pairs_of_group(rows, outputs, kinds) -> list[tuple[str, int, str, str, str]]:
    """(probe, position, hypothesis, reference, source) for every similarity one group needs."""
    zero, rand = kinds["zero"], kinds["random"]
    similar, shuffled = rows[kinds["one_similar"]], rows[kinds["shuffled"]]
    source = rows[zero]["source"]
    pairs = [("iwl", 0, outputs[rand], outputs[zero], source)]
    pairs += [("icl", i, outputs[kinds["one_similar"]], ex["target"], source)
              for i, ex in enumerate(similar["examples"])]
    position = shuffled["paraphrase_position"]
    if position < 0:
        position = similar["paraphrase_position"]
    pairs += [("copy", i, outputs[kinds["shuffled"]], ex["target"], source)
              for i, ex in enumerate(shuffled["examples"]) if i != position]
    return pairs


def probe_scores(rows: list[dict[str, Any]], outputs: list[str],
                 similarity: SimilarityFn) -> dict[str, Any]:
    """Mean probe scores per test set and over all groups, from one output per probe row."""
    return aggregate_items(item_scores(rows, outputs, similarity))


def item_scores(rows: list[dict[str, Any]], outputs: list[str],
                similarity: SimilarityFn) -> dict[str, dict[str, float | None]]:
    """`test_set/target_id` -> probe -> score of that one group. Kept per item in the probe files
    so an analysis can resample items (and seeds) for an interval, not only average them."""
    groups = _groups(rows)
    keyed = [(key, pair) for key, kinds in groups.items() for pair in _pairs_of_group(rows, outputs, kinds)]
    sims = score_answers(similarity, [p[2] for _, p in keyed], [p[3] for _, p in keyed],
                         [p[4] for _, p in keyed])  # an empty output scores 0 (trainer.metrics)
    per_group: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for (key, (probe, position, _, reference, _)), value in zip(keyed, sims):
        per_group[key][probe].append((position, reference, value))
    return {key: {name: None if value is None else round(value, 6)
                  for name, value in _group_scores(rows, groups[key], per_group[key]).items()}
            for key in groups}


def _group_scores(rows, kinds, parts) -> dict[str, float]:
    similar = rows[kinds["one_similar"]]
    weights = context_weights([ex["cosine"] for ex in similar["examples"]])
    icl = float(sum(weights[pos] * value for pos, _, value in parts["icl"]))
    copies = parts["copy"]
    gold = rows[kinds["shuffled"]]["target"]
    nongold = [value for _, reference, value in copies if reference != gold]
    return {"iwl": parts["iwl"][0][2], "icl": icl,
            "copy": max((value for _, _, value in copies), default=None),
            "copy_nongold": max(nongold, default=None)}  # None: no such label in this context


def aggregate_items(scores: dict[str, dict[str, float | None]]) -> dict[str, Any]:
    """Per test set and over `all`: the mean of each probe over the items that have it."""
    out: dict[str, Any] = {}
    test_sets = sorted({key.split("/", 1)[0] for key in scores})
    for test_set in [*test_sets, "all"]:
        chosen = [s for key, s in scores.items() if test_set == "all" or key.startswith(test_set + "/")]
        if chosen:
            out[test_set] = {name: _mean([s[name] for s in chosen]) for name in PROBE_NAMES}
            out[test_set]["items"] = len(chosen)
    return out


def _mean(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return round(float(np.mean(present)), 6) if present else None


def probe_rows(data: str, limit: int | None) -> list[dict[str, Any]]:
    version = open_version(data)
    rows = first_items(load_split(version, "probe"), limit).to_list()
    if not _groups(rows):
        raise UserError(f"{version.folder}/probe: no complete probe group (zero, random, "
                        "one_similar and shuffled rows sharing a target_id); rebuild the version")
    return rows


def run_probes(model, tokenizer, rows: list[dict[str, Any]], similarity: SimilarityFn,
               batch_size: int = 16, max_new_tokens: int = 64,
               label: str = "probes") -> dict[str, Any]:
    """One probe point: `{"scores": per test set means, "items": per item scores}`."""
    outputs = generate_answers(model, tokenizer, [row["prompt"] for row in rows], batch_size,
                               max_new_tokens, label)
    items = item_scores(rows, outputs, similarity)
    return {"scores": aggregate_items(items), "items": items}


def main(cfg: ProbeConfig) -> dict[str, Any]:
    version = open_version(cfg.data)
    model_path, adapter = inference_paths(cfg.model, cfg.adapter)
    similarity = similarity_function(cfg.comet_path)
    rows = probe_rows(cfg.data, cfg.limit)
    set_threads(cfg.threads)
    model, tokenizer = load_for_inference(model_path, adapter, cfg.device)
    say(f"probing: {len(rows)} probe rows ({version.task} version {version.version})")
    point = run_probes(model, tokenizer, rows, similarity, cfg.gen_batch_size, cfg.max_new_tokens)
    run = read_run_config(adapter) if adapter else {}
    regime = run.get("config", {}).get("regime") or ("adapter" if adapter else "base")
    step = cfg.step if cfg.step is not None else run.get("train", {}).get("steps", 0)
    result = {"regime": regime, "model": model_path, "adapter": cfg.adapter,
              "dataset": version.identity(), "similarity": "comet" if cfg.comet_path else "chrf",
              "history": [{"step": step, **point}]}
    output = Path(cfg.output) if cfg.output else Path("runs") / "probe" / f"{result['regime']}.json"
    write_json_atomically(output, result)
    print(f"{regime} step {step}: {point['scores'].get('all')}\nreport: {output}")
    return result


def cli(argv: list[str] | None = None) -> int:
    return run_cli(ProbeConfig, main, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
