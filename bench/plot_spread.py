"""Draws a spread benchmark result (bench/spread.sh's JSON) as a PNG.

Top: successful claims/s of each cell as a bar; beside it, as horizontal ticks, the floor the
cell is held to (raw SQL, no HTTP, best of 1 and 2 connections) and the bar the target sets
(floor x ratio). Bottom: p50 and p99 of each cell (log scale) with the p99 target.

Usage: python3 bench/plot_spread.py RESULT.json OUT.png
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402


def main(result_path: str, out_path: str) -> None:
    with open(result_path, encoding="utf-8") as f:
        result = json.load(f)
    cells = result["cells"]
    names = [c["cell"] for c in cells]
    xs = range(len(cells))

    fig, (ax_rate, ax_lat) = plt.subplots(
        2, 1, figsize=(9, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )
    bars = ax_rate.bar(xs, [c["claims_per_s"] for c in cells], color="tab:blue", width=0.55,
                       label="service, claims/s")
    for bar, cell in zip(bars, cells):
        ax_rate.annotate(f"{cell['claims_per_s']:,.0f}", (bar.get_x() + bar.get_width() / 2,
                         bar.get_height()), textcoords="offset points", xytext=(0, 3),
                         ha="center", fontsize=8)
    labelled = set()
    for x, name in zip(xs, names):
        for crit in result["criteria"]:
            ref = crit.get("reference_claims_per_s")
            if crit["cell"] != name or not ref:
                continue
            ratio = float(crit["target"].split()[-1])
            for value, style, label in ((ref, "-", "reference (floor, or 1x1 for history)"),
                                        (ref * ratio, ":", "target = reference x ratio")):
                ax_rate.hlines(value, x - 0.4, x + 0.4, colors="tab:green", linestyles=style,
                               label=None if label in labelled else label)
                labelled.add(label)
            ax_rate.annotate(f"{crit['reference']}: {ref:,.0f}", (x + 0.4, ref), fontsize=7,
                             textcoords="offset points", xytext=(2, 2), color="tab:green")
    ax_rate.set_ylabel("successful claims / s")
    ax_rate.grid(True, axis="y", alpha=0.3)
    ax_rate.legend(fontsize=8, loc="upper right")

    ax_lat.plot(xs, [c["p99_ms"] for c in cells], "o", color="tab:purple", label="p99")
    ax_lat.plot(xs, [c["p50_ms"] for c in cells], "s", color="tab:purple", alpha=0.5,
                label="p50")
    ax_lat.axhline(25, color="tab:red", linestyle=":", alpha=0.6, label="p99 target 25 ms")
    ax_lat.set_yscale("log")
    ax_lat.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    ax_lat.yaxis.set_minor_formatter(NullFormatter())
    ax_lat.set_ylabel("latency, ms (log)")
    ax_lat.grid(True, which="both", alpha=0.3)
    ax_lat.legend(fontsize=8, loc="upper right")
    ax_lat.set_xticks(list(xs))
    ax_lat.set_xticklabels(
        [f"{c['cell']}\n{c['instances']} inst, {c['campaigns']} camp, {c['distribution']}"
         for c in cells], fontsize=8)

    dirty = " (dirty)" if result.get("dirty") else ""
    settings = result["settings"]
    fig.suptitle(
        f"giftcodes spread: service vs the minimal transaction's floor — {result['commit']}{dirty}, "
        f"{result['date']}\n{result['host']['cpus']} shared cores, {settings['connections']} "
        f"connections, {settings['cell_seconds']} s per cell, every request a new user",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot_spread.py RESULT.json OUT.png")
    main(sys.argv[1], sys.argv[2])
