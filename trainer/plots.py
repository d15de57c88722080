"""Charts in the style of the paper: accuracy by similarity bin (Figure 3), probe curves (Figure 4).

Colours follow the paper's legend order: base blue, zero orange, random green, similar red,
contrastive violet; any other label takes the next colour of the cycle.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.report import BIN_NAMES

PAPER_ORDER = ("base", "zero", "random", "similar", "contrastive")
PROBE_TITLES = {"iwl": "IWL score", "icl": "ICL score", "copy": "Copy score"}


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def colour_of(label: str, index: int) -> str:
    if label in PAPER_ORDER:
        return f"C{PAPER_ORDER.index(label)}"
    return f"C{len(PAPER_ORDER) + index % 5}"


def _save(fig, output: Path) -> None:
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    tmp = output.with_name(f".{output.stem}.tmp.png")
    fig.savefig(tmp, dpi=120, bbox_inches="tight")
    tmp.replace(output)


def similarity_bars(reports: list[dict[str, Any]], output: Path) -> Path:
    """One panel per test set; per similarity bin, one bar per model with its 95% interval."""
    plt = _pyplot()
    metric = reports[0]["primary_metric"]
    test_sets = [t for t in reports[0]["metrics"][metric] if t != "all"] or ["all"]
    width = 0.8 / len(reports)
    fig, axes = plt.subplots(1, len(test_sets), figsize=(4.5 * len(test_sets), 3.6), squeeze=False)
    for ax, test_set in zip(axes[0], test_sets):
        for k, report in enumerate(reports):
            table = report["metrics"][report["primary_metric"]].get(test_set, {}).get("by_bin", {})
            xs, means, errs = [], [], [[], []]
            for b, name in enumerate(BIN_NAMES):
                if name in table:
                    s = table[name]
                    xs.append(b - 0.4 + width * (k + 0.5))
                    means.append(s["mean"])
                    errs[0].append(max(s["mean"] - s["low"], 0.0))
                    errs[1].append(max(s["high"] - s["mean"], 0.0))
            ax.bar(xs, means, width, yerr=errs, capsize=2, label=report["label"],
                   color=colour_of(report["label"], k))
        ax.set_xticks(range(len(BIN_NAMES)), [n.capitalize() for n in BIN_NAMES])
        ax.set_xlabel("max target-context similarity")
        ax.set_ylabel(metric)
        ax.set_title(f"{reports[0]['dataset'].get('task', '')} {test_set.upper()}")
    axes[0][-1].legend(fontsize=8, loc="best")
    _save(fig, output)
    plt.close(fig)
    return Path(output)


def _number(value) -> float:
    return float("nan") if value is None else float(value)


def probe_curves(results: list[dict[str, Any]], output: Path, test_set: str = "all") -> Path:
    """Three panels (IWL, ICL, copy), one line per run, score against training step."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
    for k, result in enumerate(results):
        label = result.get("label") or result.get("regime", f"run {k}")
        points = sorted(result["history"], key=lambda p: p["step"])
        steps = [p["step"] for p in points if test_set in p["scores"]]
        for ax, probe in zip(axes, PROBE_TITLES):
            values = [_number(p["scores"][test_set].get(probe)) for p in points
                      if test_set in p["scores"]]
            ax.plot(steps, values, marker="o", markersize=3, label=label, color=colour_of(label, k))
    titles = [f"{title} ({test_set})" for title in PROBE_TITLES.values()]
    return finish_step_panels(fig, axes, titles, "similarity", output)


def finish_step_panels(fig, axes, titles: list[str], ylabel: str, output: Path,
                       legend_size: int = 8) -> Path:
    """Titles, step axis, legend, save and close: the common tail of every score-vs-step figure."""
    for ax, title in zip(axes, titles):
        ax.set_title(title)
        ax.set_xlabel("training step")
    axes[0].set_ylabel(ylabel)
    axes[-1].legend(fontsize=legend_size, loc="best")
    _save(fig, output)
    _pyplot().close(fig)
    return Path(output)
