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
    _label(
        ax,
        "delivery latency (ms, log scale)",
        "fraction of deliveries",
        "Delivery latency",
        which="both",
        legend_size=8,
    )
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
    _label(ax, "seconds since the storm began", "connections ready", "Connect storm", legend_size=8)
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
    _label(
        ax,
        "seconds since the storm began",
        "connections completed per second",
        "Connect storm: rate over time",
        legend_size=8,
    )
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
    _label(ax, "idle connections on one process", "RSS per connection (KiB)", "Memory per idle connection")
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
    _label(ax, "daphne processes", "deliveries per second", "Scale-out (fan-out, one room)")
    return _save(fig, path)


def _label(ax, xlabel: str, ylabel: str, title: str, *, which: str = "major", legend_size: int | None = None) -> None:
    """Axis labels, title, a light grid and the legend: the same on every plot."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which=which, alpha=0.3)
    ax.legend(**({"fontsize": legend_size} if legend_size else {}))


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
