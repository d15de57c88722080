r"""Several models on one chart: accuracy by similarity bin (Figure 3) or probe curves (Figure 4).

Usage:

    python trainer/compare.py --kind eval --output runs/eval/figure3.png --reports \
        runs/eval/base.json runs/eval/zero.json runs/eval/random.json \
        runs/eval/similar.json runs/eval/contrastive.json
    python trainer/compare.py --kind probe --output runs/probe/figure4.png --reports \
        random=runs/train/random/probes.json contrastive=runs/train/contrastive/probes.json

A report may be named `LABEL=PATH` to override the label it carries. Eval bars are drawn in the
paper's order (base, zero, random, similar, contrastive, then any other label). A JSON table of
the plotted numbers is written next to the PNG.
"""
from __future__ import annotations

if __name__ == "__main__" and not __package__:  # `python trainer/compare.py` from a checkout
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import json
import sys
from pathlib import Path
from typing import Any

from schemas.errors import UserError
from stages.base import write_json_atomically
from trainer.config import CompareConfig, run_cli
from trainer.plots import PAPER_ORDER, probe_curves, similarity_bars


def read_reports(specs: list[str]) -> list[dict[str, Any]]:
    reports = []
    for spec in specs:
        label, _, path = spec.partition("=") if "=" in spec else ("", "", spec)
        file = Path(path)
        if not file.is_file():
            raise UserError(f"{path}: report not found; pass JSON files written by "
                            "trainer/evaluate.py or trainer/probe.py")
        report = json.loads(file.read_text(encoding="utf-8"))
        if label:
            report["label"] = label
        reports.append(report)
    return reports


def paper_order(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def rank(report):
        label = report.get("label") or report.get("regime", "")
        return PAPER_ORDER.index(label) if label in PAPER_ORDER else len(PAPER_ORDER)

    return sorted(reports, key=rank)


def eval_table(reports: list[dict[str, Any]]) -> dict[str, Any]:
    metrics = {r["primary_metric"] for r in reports}
    if len(metrics) > 1:
        raise UserError(f"reports use different primary metrics {sorted(metrics)}; compare "
                        "reports of one task evaluated the same way")
    return {r["label"]: {t: v["by_bin"] for t, v in r["metrics"][r["primary_metric"]].items()}
            for r in reports}


def main(cfg: CompareConfig) -> Path:
    reports = paper_order(read_reports(cfg.reports))
    output = Path(cfg.output)
    if cfg.kind == "eval":
        table = eval_table(reports)
        similarity_bars(reports, output)
    else:
        for report in reports:
            report.setdefault("label", report.get("regime"))
        table = {r["label"]: [{k: v for k, v in point.items() if k != "items"} for point in r["history"]]
                 for r in reports}  # the means per point; per-item scores stay in the reports
        probe_curves(reports, output)
    write_json_atomically(output.with_suffix(".json"), table)
    print(f"chart: {output}")
    return output


def cli(argv: list[str] | None = None) -> int:
    return run_cli(CompareConfig, main, argv, __doc__)


if __name__ == "__main__":
    raise SystemExit(cli())
