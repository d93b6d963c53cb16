"""The run's table on stdout, and which of the issue's targets it meets."""

from typing import Any


def _get(data: dict[str, Any], path: str) -> Any:
    for key in path.split("."):
        if not isinstance(data, dict) or key not in data:
            return None
        data = data[key]
    return data


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


TRAFFIC_ROWS = (
    "deliveries_expected",
    "deliveries_distinct",
    "lost",
    "duplicates",
    "out_of_order",
    "latency_ms.p50",
    "latency_ms.p95",
    "latency_ms.p99",
    "latency_ms.max",
    "deliveries_per_s",
    "server_cpu_percent",
)
STORM_ROWS = (
    "connected",
    "failures",
    "connections_per_s",
    "connect_latency_ms.p50",
    "connect_latency_ms.p99",
    "server_cpu_percent",
)


SOCKETS_ROWS = (
    "connected",
    "failures",
    "connects_retried",
    "dropped",
    "registered",
    "connections_per_s",
    "rss_per_socket_kib",
    "ping_ms.p99",
    "echo_ms.p99",
    "probes_dropped",
)
# Column widths: figure, then product, baseline, ceiling, then the two ratios.
FIGURE, VALUE, RATIO = 52, 13, 10


def table(scenarios: dict[str, Any]) -> str:
    """
    A plain-text table: one line per figure, product, baseline, ceiling, then
    ``ratio`` (product/baseline) and ``to ceiling`` (product/ceiling).
    """
    lines = [
        f"{'figure':<{FIGURE + 3}}{'product':>{VALUE}}{'baseline':>{VALUE}}{'ceiling':>{VALUE}}"
        f"{'ratio':>{RATIO}}{'to ceiling':>{RATIO + 2}}"
    ]

    def line(
        name: str, product: Any, baseline: Any, ceiling: Any = None, ratio: Any = None, to_ceiling: Any = None
    ) -> None:
        cells = "".join(f"{_fmt(v):>{VALUE}}" for v in (product, baseline, ceiling))
        lines.append(f"   {name:<{FIGURE}}{cells}{_fmt(ratio):>{RATIO}}{_fmt(to_ceiling):>{RATIO + 2}}")

    def section(title: str, case: dict[str, Any], rows: tuple[str, ...]) -> None:
        lines.append(f"-- {title}")
        for row in rows:
            line(
                row,
                *(_get(case.get(kind) or {}, row) for kind in ("product", "baseline", "ceiling")),
                case.get("ratio", {}).get(row),
                case.get("ratio_to_ceiling", {}).get(row),
            )

    for mode, case in scenarios.get("connect_storm", {}).items():
        section(
            f"connect storm, {mode.replace('_', ' ')} ({case['product']['connections']} connections)", case, STORM_ROWS
        )
    for members, case in scenarios.get("fanout", {}).items():
        section(f"fan-out, {members} members", case, TRAFFIC_ROWS)
    if "many_rooms" in scenarios:
        case = scenarios["many_rooms"]
        section(f"many rooms, {case['product']['rooms']} x {case['product']['members_per_room']}", case, TRAFFIC_ROWS)
    for count in scenarios.get("scale_out", {}).get("product", {}):
        case = {kind: scenarios["scale_out"][kind][count] for kind in ("product", "baseline")}
        case["ratio"] = scenarios["scale_out"]["ratio"][count]
        section(f"scale-out, {count} process(es), no ceiling", case, ("lost", "latency_ms.p99", "deliveries_per_s"))
    idle = scenarios.get("idle")
    if idle:
        ceiling_steps = idle.get("ceiling", {}).get("steps", [])
        for index, (p, b) in enumerate(zip(idle["product"]["steps"], idle["baseline"]["steps"], strict=False)):
            step = str(p["connections"])
            case = {
                "product": p,
                "baseline": b,
                "ceiling": ceiling_steps[index] if index < len(ceiling_steps) else None,
                "ratio": idle["ratio"].get(step, {}),
                "ratio_to_ceiling": idle.get("ratio_to_ceiling", {}).get(step, {}),
            }
            section(
                f"idle, {p['connections']} connections",
                case,
                ("failures", "rss_per_connection_kib", "ping_ms.p99", "echo_ms.p99"),
            )
    sockets = scenarios.get("sockets")
    if sockets:
        p = sockets["product"]
        title = f"sockets, {p['sockets']:,} at once over {p['server_processes']} processes (each kind)"
        section(title, sockets, SOCKETS_ROWS)
    layer = _get(scenarios, "levers.channel_layer")
    if layer:
        for load in ("fanout", "saturated"):
            lines.append(f"-- lever: channel layer, {load} (pubsub / core)")
            for row in ("lost", "latency_ms.p99", "deliveries_per_s", "server_cpu_percent"):
                pubsub, core = _get(layer[load]["pubsub"] or {}, row), _get(layer[load]["core"], row)
                ratio = (layer[load]["ratio_pubsub_over_core"] or {}).get(row)
                line(row, pubsub, core, None, ratio)
    workers = _get(scenarios, "levers.dynamodb_max_workers.connect_storm")
    if workers:
        lines.append("-- lever: CHAT_DYNAMODB_MAX_WORKERS, connect storm (product)")
        for count, figures in workers.items():
            rate, p99 = figures["connections_per_s"], figures["connect_latency_ms"]["p99"]
            line(f"{count} workers: connections/s, p99 ms", rate, p99)
    memory = _get(scenarios, "levers.stores_in_memory.connect_storm")
    if memory:
        lines.append("-- lever: registry and history in memory instead of DynamoDB Local, connect storm (product)")
        for store, figures in memory.items():
            if figures:
                rate, p99 = figures["connections_per_s"], figures["connect_latency_ms"]["p99"]
                line(f"{store}: connections/s, p99 ms", rate, p99)
        for store, figures in _get(scenarios, "levers.stores_in_memory.many_rooms").items():
            if figures:
                line(f"{store}: many rooms, lost, p99 ms", figures["lost"], figures["latency_ms"]["p99"])
    server = _get(scenarios, "levers.asgi_server")
    if server:
        lines.append("-- lever: the same application under uvicorn instead of daphne (daphne / uvicorn)")
        for load, rows in (
            ("connect_storm", ("connections_per_s", "connect_latency_ms.p99", "server_cpu_percent")),
            ("fanout", ("lost", "latency_ms.p99", "deliveries_per_s", "server_cpu_percent")),
        ):
            daphne, uvicorn = server[load]["daphne"] or {}, server[load]["uvicorn"]
            for row in rows:
                line(f"{load}: {row}", _get(daphne, row), _get(uvicorn, row))
    lines.append("ratio: product / baseline; to ceiling: product / ceiling")
    return "\n".join(lines)


def targets(scenarios: dict[str, Any]) -> list[dict[str, Any]]:
    """
    The performance targets, each as it is stated: a ratio to the tutorial
    or the ceiling measured in the same run, or a bound; with the measured
    figure and whether it is met (a figure not measured is left out).
    """
    out = []

    def target(name: str, goal: str, measured: Any, met: bool) -> None:
        out.append({"target": name, "goal": goal, "measured": measured, "met": met})

    storm = _get(scenarios, "connect_storm.rooms")
    if storm:
        p, b = storm["product"], storm["baseline"]
        ratio = storm["ratio"].get("connections_per_s")
        target("connect storm: connections/s vs the tutorial", ">= 1.0x", ratio, ratio is not None and ratio >= 1.0)
        p99, bound = p["connect_latency_ms"]["p99"], b["connect_latency_ms"]["p99"] * 1.5
        target("connect storm: p99 vs the tutorial's x 1.5", f"< {_fmt(round(bound))} ms", p99, p99 < bound)
        target("connect storm: failures", "0", p["failures"], p["failures"] == 0)
    fanout = scenarios.get("fanout", {})
    if fanout:
        largest = fanout[max(fanout, key=int)]
        p, c = largest["product"], largest.get("ceiling")
        clean = p["lost"] == 0 and p["duplicates"] == 0 and p["out_of_order"] == 0
        target(
            f"fan-out {p['members']}: lost / duplicates / out of order",
            "0 / 0 / 0",
            f"{p['lost']} / {p['duplicates']} / {p['out_of_order']}",
            clean,
        )
        if c:
            ratio = largest["ratio_to_ceiling"].get("latency_ms.p99")
            target(f"fan-out {p['members']}: p99 vs the ceiling", "<= 2.0x", ratio, ratio is not None and ratio <= 2.0)
            per_delivery = [case["server_cpu_percent"] / max(1, case["deliveries_distinct"]) for case in (p, c)]
            ratio = round(per_delivery[0] / per_delivery[1], 2) if per_delivery[1] else None
            target(
                f"fan-out {p['members']}: server CPU per delivery vs the ceiling",
                "<= 2.5x",
                ratio,
                ratio is not None and ratio <= 2.5,
            )
    many = scenarios.get("many_rooms")
    if many:
        ratio = many["ratio"].get("latency_ms.p99")
        target("many rooms: p99 vs the tutorial", "<= 1.0x", ratio, ratio is not None and ratio <= 1.0)
        target("many rooms: lost", "0", many["product"]["lost"], many["product"]["lost"] == 0)
    sockets = _get(scenarios, "sockets.product")
    if sockets:
        every = sockets["failures"] == sockets["dropped"] == 0 and sockets["registered"] == sockets["sockets"]
        target(
            f"sockets: {sockets['sockets']:,} at once, every one registered",
            f"{sockets['sockets']:,}",
            sockets["registered"],
            every,
        )
        rss = sockets["rss_per_socket_kib"]
        target("sockets: RSS per socket (KiB)", "< 40", rss, rss < 40)
        ping, echo = sockets["ping_ms"]["p99"], sockets["echo_ms"]["p99"]
        target("sockets: probe ping p99 (ms)", "< 100", ping, ping is not None and ping < 100)
        target("sockets: probe message round trip p99 (ms)", "< 200", echo, echo is not None and echo < 200)
    return out


def targets_table(rows: list[dict[str, Any]]) -> str:
    lines = [f"{'target':<58}{'goal':>24}{'measured':>24}  met"]
    for row in rows:
        met = {True: "yes", False: "NO", None: "-"}[row["met"]]
        lines.append(f"{row['target']:<58}{row['goal']:>24}{_fmt(row['measured']):>24}  {met}")
    return "\n".join(lines)
