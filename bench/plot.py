"""Draws a claims benchmark result (bench/claims.sh's JSON) as a PNG.

Top: successful claims/s against the offered rate, saturation as its own point at the right,
the best one-code-per-transaction floor (raw SQL, no HTTP) as a horizontal line, and the floor
at the largest batch dashed. Bottom: p50 and p99 latency against the offered rate, with the
p99 target.

Usage: python3 bench/plot.py RESULT.json OUT.png
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
    service = result["service"]
    floor = result["floor"]
    targets = result.get("targets", {})
    open_phases = sorted(
        (p for p in service if p["mode"] == "open"), key=lambda p: p["offered_rate"]
    )
    saturation = [p for p in service if p["mode"] == "closed"]

    rates = [p["offered_rate"] for p in open_phases]
    top_rate = max(rates) if rates else 1000.0
    sat_x = top_rate * 1.3 if rates else 1.0

    fig, (ax_rate, ax_lat) = plt.subplots(
        2, 1, figsize=(8.5, 8), sharex=True, gridspec_kw={"height_ratios": [3, 2]}
    )

    # Throughput.
    if open_phases:
        ax_rate.plot(
            rates, [p["claims_per_s"] for p in open_phases], "o-", color="tab:blue",
            label="service, claims/s (open loop)",
        )
        ax_rate.plot(rates, rates, ":", color="grey", label="offered rate")
    for p in saturation:
        ax_rate.plot(
            [sat_x], [p["claims_per_s"]], "D", color="tab:red", markersize=9,
            label=f"service at saturation ({p['connections']} conns, {p['seconds']:.0f} s)",
        )
        ax_rate.annotate(
            f"{p['claims_per_s']:,.0f}/s", (sat_x, p["claims_per_s"]),
            textcoords="offset points", xytext=(-10, 8), ha="right",
        )
    per_code = [f for f in floor if f["per_transaction"] == 1]
    if per_code:
        best = max(per_code, key=lambda f: f["codes_per_s"])
        ax_rate.axhline(
            best["codes_per_s"], color="tab:green", linestyle="-",
            label=f"floor, 1 code/tx (best: {best['connections']} conn): "
            f"{best['codes_per_s']:,.0f}/s",
        )
    batched = [f for f in floor if f["per_transaction"] > 1]
    if batched:
        big = max(batched, key=lambda f: (f["per_transaction"], f["codes_per_s"]))
        ax_rate.axhline(
            big["codes_per_s"], color="tab:green", linestyle="--",
            label=f"floor, {big['per_transaction']} codes/tx ({big['connections']} conns): "
            f"{big['codes_per_s']:,.0f}/s",
        )
    target = targets.get("claims_per_s", {}).get("target")
    if target:
        ax_rate.axhline(target, color="tab:red", linestyle=":", alpha=0.6,
                        label=f"target {target:,}/s")
    ax_rate.set_ylabel("successful claims / s")
    tops = [p["claims_per_s"] for p in service] + [f["codes_per_s"] for f in floor]
    tops += rates + ([target] if target else [])
    ax_rate.set_ylim(0, max(tops + [1]) * 1.15)
    ax_rate.grid(True, alpha=0.3)
    ax_rate.legend(fontsize=8, loc="upper left")

    # Latency.
    if open_phases:
        ax_lat.plot(rates, [p["p99_ms"] for p in open_phases], "o-", color="tab:purple",
                    label="p99")
        ax_lat.plot(rates, [p["p50_ms"] for p in open_phases], "s--", color="tab:purple",
                    alpha=0.5, label="p50")
    for p in saturation:
        ax_lat.plot([sat_x], [p["p99_ms"]], "D", color="tab:red", markersize=9,
                    label="p99 at saturation")
        ax_lat.plot([sat_x], [p["p50_ms"]], "d", color="tab:red", alpha=0.5,
                    label="p50 at saturation")
    p99_target = targets.get("p99_ms", {}).get("target")
    if p99_target:
        ax_lat.axhline(p99_target, color="tab:red", linestyle=":", alpha=0.6,
                       label=f"p99 target {p99_target} ms")
    ax_lat.set_yscale("log")
    highest = max([p["p99_ms"] for p in service] + [p99_target or 0, 1.0])
    ax_lat.set_ylim(top=highest * 1.6)
    plain = FuncFormatter(lambda value, _: f"{value:g}")
    ax_lat.yaxis.set_major_formatter(plain)
    lowest = min([p["p50_ms"] for p in service if p["p50_ms"] > 0] + [highest])
    # Label the minor ticks only when the axis spans little more than a decade.
    ax_lat.yaxis.set_minor_formatter(plain if highest / lowest < 20 else NullFormatter())
    ax_lat.set_ylabel("latency, ms (log)")
    ax_lat.set_xlabel("offered rate, requests / s")
    ax_lat.grid(True, which="both", alpha=0.3)
    ax_lat.legend(fontsize=8, loc="upper left")

    ticks = rates + ([sat_x] if saturation else [])
    labels = [f"{r:,.0f}" for r in rates] + (["saturation"] if saturation else [])
    ax_lat.set_xticks(ticks)
    ax_lat.set_xticklabels(labels)
    ax_lat.set_xlim(0, (sat_x if saturation else top_rate) * 1.08)

    dirty = " (dirty)" if result.get("dirty") else ""
    fig.suptitle(
        f"giftcodes claims: service vs raw-SQL floor — {result['commit']}{dirty}, "
        f"{result['date']}\n{result['host']['cpus']} shared cores, MariaDB "
        f"{result['host']['mariadb'].split('-')[0]}, every request a new user",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULT.json OUT.png")
    main(sys.argv[1], sys.argv[2])
