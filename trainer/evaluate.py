r"""Accuracy of a model on a version's `eval` set, by eval context and by target-context similarity.

Usage:

    # a fine-tuned adapter (the base model is read from the adapter's run_config.json)
    python trainer/evaluate.py --data runs/align-synth/latest --adapter runs/train/contrastive \
        --output runs/eval/contrastive.json
    # the untuned base model
    python trainer/evaluate.py --data runs/align-synth/latest --model models/smollm2-135m \
        --output runs/eval/base.json
    # then one chart with several models side by side (paper Figure 3)
    python trainer/compare.py --kind eval --output runs/eval/figure3.png \
        --reports runs/eval/base.json runs/eval/contrastive.json

Writes the JSON report, a `<stem>.predictions.jsonl` with every output and its scores, and a
`<stem>.png` bar chart. Metrics: the task's own (exact match for align-synth, chrF for MT), chrF,
corpus chrF and BLEU per test set and context, and COMET-22 with `--comet-path CKPT`.
"""
from __future__ import annotations

if __name__ == "__main__" and not __package__:  # `python trainer/evaluate.py` from a checkout
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import sys
import time
from pathlib import Path
from typing import Any

from stages.base import write_json_atomically
from trainer.config import EvalConfig, run_cli
from trainer.data import Version, first_items, load_split, open_version
from trainer.generate import generate_answers
from trainer.metrics import Comet, comet_checkpoint, corpus_scores, item_scores
from trainer.modeling import inference_paths, load_for_inference, read_run_config, set_threads
from trainer.progress import say
from trainer.report import similarity_report


def model_label(cfg: EvalConfig) -> str:
    if cfg.label:
        return cfg.label
    if cfg.adapter:
        return read_run_config(cfg.adapter).get("config", {}).get("regime") or Path(cfg.adapter).name
    return "base"


def corpus_table(rows: list[dict], predictions: list[str]) -> dict[str, dict[str, Any]]:
    """Corpus chrF / BLEU per test set, per eval context and over all contexts."""
    table: dict[str, dict[str, Any]] = {}
    for test_set in sorted({row["test_set"] for row in rows}):
        contexts = sorted({row["eval_context"] for row in rows if row["test_set"] == test_set})
        entry = {}
        for context in [*contexts, "all"]:
            chosen = [i for i, row in enumerate(rows) if row["test_set"] == test_set
                      and (context == "all" or row["eval_context"] == context)]
            entry[context] = corpus_scores([predictions[i] for i in chosen],
                                           [rows[i]["target"] for i in chosen])
        table[test_set] = entry
    return table


def build_report(version: Version, rows: list[dict], predictions: list[str], cfg: EvalConfig,
                 comet: Comet | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report (bins, contexts, intervals for every item metric) and the per-row records."""
    targets = [row["target"] for row in rows]
    scores = item_scores(version.metric, predictions, targets, [row["source"] for row in rows], comet)
    primary = "comet" if "comet" in scores else next(iter(scores))
    report = {
        "label": model_label(cfg),
        "model": {"base": cfg.model, "adapter": cfg.adapter},
        "dataset": version.identity(),
        "primary_metric": primary,
        "rows": len(rows), "items": len({(r["test_set"], r["target_id"]) for r in rows}),
        "bootstrap": {"resamples": cfg.resamples, "seed": cfg.seed, "level": 0.95,
                      "unit": "test item (all its eval contexts together)"},
        "corpus": corpus_table(rows, predictions),
        "metrics": {name: similarity_report(rows, values, cfg.resamples, cfg.seed)
                    for name, values in scores.items()},
    }
    records = [{"id": row["id"], "target_id": row["target_id"], "test_set": row["test_set"],
                "eval_context": row["eval_context"], "max_sim": row["max_sim"],
                "target": row["target"], "prediction": pred,
                **{name: values[i] for name, values in scores.items()}}
               for i, (row, pred) in enumerate(zip(rows, predictions))]
    return report, records


def default_output(cfg: EvalConfig, version: Version) -> Path:
    return Path("runs") / "eval" / f"{version.task}-{version.version[:12]}-{model_label(cfg)}.json"


def write_outputs(report: dict[str, Any], records: list[dict[str, Any]], output: Path) -> None:
    from trainer.plots import similarity_bars

    write_json_atomically(output, report)
    lines = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    tmp = output.with_name(f".{output.stem}.predictions.tmp")
    tmp.write_text(lines, encoding="utf-8")
    tmp.replace(output.with_name(f"{output.stem}.predictions.jsonl"))
    similarity_bars([report], output.with_suffix(".png"))


def check_inputs(cfg: EvalConfig) -> tuple[EvalConfig, Version]:
    """Every path checked from the files alone, before torch is imported; the config comes back
    with the base model resolved (from --model, or the adapter's run_config.json)."""
    version = open_version(cfg.data)
    model, adapter = inference_paths(cfg.model, cfg.adapter)
    if cfg.comet_path:
        comet_checkpoint(cfg.comet_path)
    return cfg.model_copy(update={"model": model, "adapter": adapter}), version


def main(cfg: EvalConfig) -> dict[str, Any]:
    cfg, version = check_inputs(cfg)
    dataset = first_items(load_split(version, "eval"), cfg.limit)
    rows = dataset.remove_columns(["examples"]).to_list()
    set_threads(cfg.threads)
    model, tokenizer = load_for_inference(cfg.model, cfg.adapter, cfg.device)
    comet = Comet(cfg.comet_path) if cfg.comet_path else None
    say(f"generating answers to {len(rows)} eval rows ({version.task} version {version.version})")
    started = time.perf_counter()
    predictions = generate_answers(model, tokenizer, [row["prompt"] for row in rows],
                                   cfg.gen_batch_size, cfg.max_new_tokens)
    seconds = time.perf_counter() - started
    say("scoring" + (" (COMET-22)" if comet else ""))
    report, records = build_report(version, rows, predictions, cfg, comet)
    report["generation"] = {"seconds": round(seconds, 2), "rows_per_s": round(len(rows) / seconds, 2)}
    output = Path(cfg.output) if cfg.output else default_output(cfg, version)
    write_outputs(report, records, output)
    _print_summary(report, output)
    return report


def _print_summary(report: dict[str, Any], output: Path) -> None:
    metric = report["primary_metric"]
    for test_set, table in report["metrics"][metric].items():
        cells = ", ".join(f"{name} {s['mean']:.3f} [{s['low']:.3f}, {s['high']:.3f}] (n={s['rows']})"
                          for name, s in table["by_bin"].items())
        print(f"{report['label']} {test_set} {metric}: {cells}")
    print(f"report: {output}")


def cli(argv: list[str] | None = None) -> int:
    return run_cli(EvalConfig, main, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
