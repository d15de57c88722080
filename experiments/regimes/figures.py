"""Figure 3 (accuracy by similarity bin, seeds pooled) and Figure 4 (probe curves, seed range)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.plots import _pyplot, _save, colour_of, finish_step_panels
from trainer.report import BIN_NAMES

from .aggregate import PROBES

PROBE_TITLES = {"iwl": "IWL", "icl": "ICL", "copy": "copy", "copy_nongold": "copy (non-gold)"}


def figure3(results: dict[str, Any], output: Path) -> Path:
    """One bar per model per bin, seeds pooled, with the item-bootstrap 95% interval; a second
    panel with chrF/100 where the results carry it."""
    plt = _pyplot()
    panels = [(results["by_bin"], results["dataset"]["primary_metric"])]
    if "chrf" in results:
        panels.append((results["chrf"]["by_bin"], "chrF / 100"))
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 3.6), squeeze=False)
    for ax, (table, metric) in zip(axes[0], panels):
        _bars(ax, results, table, metric)
    _save(fig, output)
    plt.close(fig)
    return Path(output)


def _bars(ax, results: dict[str, Any], table: dict[str, Any], metric: str) -> None:
    width = 0.8 / max(len(table), 1)
    for k, (model, bins) in enumerate(table.items()):
        present = [(b, bins[name]) for b, name in enumerate(BIN_NAMES) if name in bins]
        xs = [b - 0.4 + width * (k + 0.5) for b, _ in present]
        means = [s["mean"] for _, s in present]
        errs = [[max(s["mean"] - s["low"], 0) for _, s in present],
                [max(s["high"] - s["mean"], 0) for _, s in present]]
        seeds = len(results["seeds"][model]) or 1
        ax.bar(xs, means, width, yerr=errs, capsize=2, color=colour_of(model, k),
               label=f"{model} ({seeds} seed{'s' if seeds > 1 else ''})")
    ax.set_xticks(range(len(BIN_NAMES)), [n.capitalize() for n in BIN_NAMES])
    ax.set_xlabel("max target-context similarity of the eval row")
    ax.set_ylabel(metric)
    ax.set_title(f"{results['dataset']['task']} {results['dataset']['version'][:12]}, id+ood")
    ax.legend(fontsize=7, loc="upper left")


def figure4(results: dict[str, Any], output: Path) -> Path:
    """One panel per probe; per regime the mean over seeds, shaded over the seed-and-item
    interval where per-item scores were kept, else from the lowest to the highest seed."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(PROBES), figsize=(4 * len(PROBES), 3.2), sharey=True)
    for k, (regime, summary) in enumerate(results["probes"].items()):
        steps = sorted(summary["curve"], key=int)
        for ax, probe in zip(axes, PROBES):
            points = [summary["curve"][s][probe] for s in steps]
            xs = [int(s) for s in steps]
            colour = colour_of(regime, k)
            ax.plot(xs, [p["mean"] for p in points], marker="o", markersize=3, color=colour,
                    label=f"{regime} ({summary['seeds']})")
            ax.fill_between(xs, [p.get("low", p["min"]) for p in points],
                            [p.get("high", p["max"]) for p in points],
                            color=colour, alpha=0.15, linewidth=0)
    return finish_step_panels(fig, axes, [PROBE_TITLES[p] for p in PROBES], "chrF / 100", output,
                              legend_size=7)
