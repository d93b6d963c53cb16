"""The PNG figures of a run (matplotlib, Agg backend: no display needed)."""

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from .servers import KINDS

COLOURS = {"product": "tab:blue", "baseline": "tab:orange", "ceiling": "tab:green"}
LABELS = {"product": "product", "baseline": "tutorial (baseline)", "ceiling": "ceiling (bare websockets)"}
STYLES = ["-", "--", ":", "-."]


def latency_cdf(scenarios: dict[str, Any], path: Path) -> Path:
    """Delivery-latency CDF per server, one line per traffic case."""
    fig, ax = plt.subplots(figsize=(8, 5))
    cases = [(f"fan-out {size}", case) for size, case in scenarios.get("fanout", {}).items()]
    if "many_rooms" in scenarios:
        cases.append(("many rooms", scenarios["many_rooms"]))
    for style, (label, case) in zip(STYLES, cases, strict=False):
        for kind in KINDS:
            points = case.get(kind, {}).get("latency_cdf_ms")
            if points:
                fractions = [i / (len(points) - 1) for i in range(len(points))]
                ax.plot(points, fractions, style, color=COLOURS[kind], label=f"{LABELS[kind]}, {label}")
    ax.set_xscale("log")
    ax.set_xlabel("delivery latency (ms, log scale)")
    ax.set_ylabel("fraction of deliveries")
    ax.set_title("Delivery latency")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def connect_rate(scenarios: dict[str, Any], path: Path) -> Path:
    """Connections completed over time in the connect storm, per server and room layout."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for style, (mode, case) in zip(STYLES, scenarios.get("connect_storm", {}).items(), strict=False):
        for kind in KINDS:
            figures = case.get(kind)
            timeline = figures["timeline_s"] if figures else None
            if timeline:
                counts = [figures["connected"] * i / (len(timeline) - 1) for i in range(len(timeline))]
                label = f"{LABELS[kind]}, {mode.replace('_', ' ')}: {figures['connections_per_s']:.0f}/s"
                ax.plot(timeline, counts, style, color=COLOURS[kind], label=label)
    ax.set_xlabel("seconds since the storm began")
    ax.set_ylabel("connections ready")
    ax.set_title("Connect storm")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def connects_per_second(scenarios: dict[str, Any], path: Path) -> Path:
    """Connections completed per second over time in the connect storm, per server and room layout."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for style, (mode, case) in zip(STYLES, scenarios.get("connect_storm", {}).items(), strict=False):
        for kind in KINDS:
            figures = case.get(kind)
            rates = figures.get("connect_rate_per_s") if figures else None
            if rates:
                width = figures["connect_rate_bin_s"]
                # Each bin's rate drawn at its end, from 0 at the start, as a step.
                times = [width * i for i in range(len(rates) + 1)]
                label = f"{LABELS[kind]}, {mode.replace('_', ' ')}"
                ax.step(times, [0, *rates], style, where="pre", color=COLOURS[kind], label=label)
    ax.set_xlabel("seconds since the storm began")
    ax.set_ylabel("connections completed per second")
    ax.set_title("Connect storm: rate over time")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def rss_per_connection(scenarios: dict[str, Any], path: Path) -> Path:
    """Resident memory per idle connection at each step, per server."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for kind in KINDS:
        steps = scenarios.get("idle", {}).get(kind, {}).get("steps", [])
        ax.plot(
            [s["connections"] for s in steps],
            [s["rss_per_connection_kib"] for s in steps],
            "o-",
            color=COLOURS[kind],
            label=LABELS[kind],
        )
    ax.axhline(40, color="grey", linestyle=":", label="target: 40 KiB")
    ax.set_xlabel("idle connections on one process")
    ax.set_ylabel("RSS per connection (KiB)")
    ax.set_title("Memory per idle connection")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


def scale_out(scenarios: dict[str, Any], path: Path) -> Path:
    """Deliveries per second against the number of server processes."""
    fig, ax = plt.subplots(figsize=(8, 5))
    for kind in ("product", "baseline"):  # the ceiling does not scale out: its rooms live in one process
        cases = scenarios.get("scale_out", {}).get(kind, {})
        counts = sorted(cases, key=int)
        ax.plot(
            [int(c) for c in counts],
            [cases[c]["deliveries_per_s"] for c in counts],
            "o-",
            color=COLOURS[kind],
            label=LABELS[kind],
        )
    ax.set_xlabel("daphne processes")
    ax.set_ylabel("deliveries per second")
    ax.set_title("Scale-out (fan-out, one room)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def draw_all(scenarios: dict[str, Any], stem: Path) -> dict[str, str]:
    """Every figure the scenarios allow, as ``<stem>-<name>.png``; returns name -> path."""
    drawn = {}
    for name, draw, needs in (
        ("latency_cdf", latency_cdf, "fanout"),
        ("connect_rate", connect_rate, "connect_storm"),
        ("connects_per_second", connects_per_second, "connect_storm"),
        ("rss_per_connection", rss_per_connection, "idle"),
        ("scale_out", scale_out, "scale_out"),
    ):
        if needs in scenarios:
            drawn[name] = str(draw(scenarios, Path(f"{stem}-{name}.png")))
    return drawn
