r"""Accuracy of a model on a version's `eval` set, by eval context and by target-context similarity.

Usage:

    # a fine-tuned adapter (the base model is read from the adapter's run_config.json)
    python trainer/evaluate.py --data runs/align-synth/latest --adapter runs/train/contrastive \
        --output runs/eval/contrastive.json
    # the untuned base model
    python trainer/evaluate.py --data runs/align-synth/latest --model models/smollm2-135m \
        --output runs/eval/base.json
    # outputs written by another inference stack: {"id", "prediction"} per eval row, no model
    python trainer/evaluate.py --data runs/align-synth/latest --predictions vllm.jsonl
    # a text-to-SQL task: predictions and gold SQL run read-only on the row's database
    python trainer/evaluate.py --data runs/bird/latest --predictions sql.jsonl --db-dir dev_databases
    # then one chart with several models side by side (paper Figure 3)
    python trainer/compare.py --kind eval --output runs/eval/figure3.png \
        --reports runs/eval/base.json runs/eval/contrastive.json

Writes the JSON report, a `<stem>.predictions.jsonl` with every output and its scores, and a
`<stem>.png` bar chart. Metrics: the task's own (exact match for align-synth, chrF for MT,
execution accuracy for text-to-SQL, with results per database too), chrF, corpus chrF and BLEU
per test set and context, and COMET-22 with `--comet-path CKPT`.
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

from schemas.errors import UserError
from stages.base import write_json_atomically, write_text_atomically
from trainer.config import EvalConfig, run_cli
from trainer.data import Version, first_items, load_split, open_version
from trainer.generate import generate_answers
from trainer.metrics import Comet, comet_checkpoint, corpus_scores, item_scores
from trainer.modeling import inference_paths, load_for_inference, read_run_config, set_threads
from trainer.predictions_file import predictions_for_rows
from trainer.progress import say
from trainer.report import similarity_report
from trainer.sql_metric import METRIC as EXECUTION, ExecutionAccuracy, databases, execution_summary


def model_label(cfg: EvalConfig) -> str:
    if cfg.label:
        return cfg.label
    if cfg.predictions:
        return Path(cfg.predictions).stem
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
                 comet: Comet | None = None, sql: ExecutionAccuracy | None = None,
                 ) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The report (bins, contexts, databases, intervals for every item metric) and the per-row
    records. `sql` runs the queries of an execution-accuracy task."""
    targets = [row["target"] for row in rows]
    outcomes = sql.score(predictions, targets, databases(rows)) if sql else None
    scores = item_scores(version.metric, predictions, targets, [row["source"] for row in rows],
                         comet, None if outcomes is None else [o.match for o in outcomes])
    primary = "comet" if "comet" in scores and version.metric != EXECUTION else next(iter(scores))
    report = {
        "label": model_label(cfg),
        "model": {"base": cfg.model, "adapter": cfg.adapter,
                  **({"predictions": cfg.predictions} if cfg.predictions else {})},
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
    if outcomes is not None:
        report["execution"] = execution_summary(outcomes, rows, sql)
        for record, row, outcome in zip(records, rows, outcomes):
            record.update(db_id=row["db_id"], execution_error=outcome.error)
    return report, records


def default_output(cfg: EvalConfig, version: Version) -> Path:
    return Path("runs") / "eval" / f"{version.task}-{version.version[:12]}-{model_label(cfg)}.json"


def write_outputs(report: dict[str, Any], records: list[dict[str, Any]], output: Path) -> None:
    from trainer.plots import similarity_bars

    write_json_atomically(output, report)
    write_text_atomically(output.with_name(f"{output.stem}.predictions.jsonl"),
                          "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    similarity_bars([report], output.with_suffix(".png"))


def check_inputs(cfg: EvalConfig) -> tuple[EvalConfig, Version]:
    """Every path checked from the files alone, before torch is imported; the config comes back
    with the base model resolved (from --model, or the adapter's run_config.json)."""
    version = open_version(cfg.data)
    if cfg.predictions:
        if cfg.model or cfg.adapter:
            raise UserError("--predictions scores outputs written elsewhere; leave --model and "
                            "--adapter out (or drop --predictions to generate with the model)")
        model = adapter = None
    else:
        model, adapter = inference_paths(cfg.model, cfg.adapter)
    if cfg.comet_path:
        comet_checkpoint(cfg.comet_path)
    return cfg.model_copy(update={"model": model, "adapter": adapter}), version


def sql_scorer(cfg: EvalConfig, version: Version) -> ExecutionAccuracy | None:
    """The query runner of an execution-accuracy task; --db-dir goes with that metric only."""
    if version.metric != EXECUTION:
        if cfg.db_dir:
            raise UserError(f"--db-dir is for execution-accuracy tasks, but {version.task} is "
                            f"scored by {version.metric}; leave --db-dir out")
        return None
    if not cfg.db_dir:
        raise UserError(f"{version.task} is scored by execution accuracy: pass --db-dir DIR, the "
                        "folder holding <db_id>/<db_id>.sqlite for every database of its eval rows")
    return ExecutionAccuracy(cfg.db_dir, cfg.sql_timeout)


def generate(cfg: EvalConfig, version: Version, rows: list[dict]) -> tuple[list[str], dict]:
    """The model's answers to every row, and how long generating them took."""
    set_threads(cfg.threads)
    model, tokenizer = load_for_inference(cfg.model, cfg.adapter, cfg.device)
    say(f"generating answers to {len(rows)} eval rows ({version.task} version {version.version})")
    started = time.perf_counter()
    predictions = generate_answers(model, tokenizer, [row["prompt"] for row in rows],
                                   cfg.gen_batch_size, cfg.max_new_tokens)
    seconds = time.perf_counter() - started
    return predictions, {"seconds": round(seconds, 2), "rows_per_s": round(len(rows) / seconds, 2)}


def main(cfg: EvalConfig) -> dict[str, Any]:
    cfg, version = check_inputs(cfg)
    sql = sql_scorer(cfg, version)
    split = load_split(version, "eval")
    rows = first_items(split, cfg.limit).remove_columns(["examples"]).to_list()
    if sql:
        sql.check_databases(rows)
    if cfg.predictions:
        predictions = predictions_for_rows(cfg.predictions, rows, split["id"], version.version)
    comet = Comet(cfg.comet_path) if cfg.comet_path else None  # fails early, not after generating
    generation = None
    if not cfg.predictions:
        predictions, generation = generate(cfg, version, rows)
    say(f"scoring {len(rows)} eval rows" + (" (COMET-22)" if comet else ""))
    report, records = build_report(version, rows, predictions, cfg, comet, sql)
    if generation:
        report["generation"] = generation
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
        if "by_database" in table:
            cells = ", ".join(f"{name} {s['mean']:.3f} (n={s['rows']})"
                              for name, s in table["by_database"].items())
            print(f"{report['label']} {test_set} {metric} by database: {cells}")
    print(f"report: {output}")


def cli(argv: list[str] | None = None) -> int:
    return run_cli(EvalConfig, main, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
