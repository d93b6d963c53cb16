"""
One benchmark run: start the parts, run every scenario against the product
and the baseline in turn, and return the figures with their ratios.
"""

import logging
import os
import time
from typing import Any

from .figures import ratios, side_by_side
from .scenarios import Sizes, connect_storm, idle_capacity, traffic
from .servers import Stack

logger = logging.getLogger(__name__)

KINDS = ("product", "baseline")
SCENARIOS = ("connect_storm", "fanout", "many_rooms", "idle", "scale_out", "levers")
# Figures that describe the set-up rather than measure it: no ratio for them.
SETUP = {
    "connections",
    "concurrency",
    "room_size",
    "rooms",
    "members_per_room",
    "members",
    "server_processes",
    "generator_processes",
    "rate_per_room",
    "seconds",
    "messages_planned",
}


def compare(product: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    case = side_by_side(product, baseline)
    case["ratio"] = {k: v for k, v in case["ratio"].items() if k not in SETUP}
    return case


async def run_suite(stack: Stack, sizes: Sizes, only: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    main = {kind: stack.server(kind, f"{kind}-main") for kind in KINDS}

    def log_done(name: str, began: float) -> None:
        logger.info("%s done in %.0f s", name, time.monotonic() - began)

    if "connect_storm" in only:
        began = time.monotonic()
        scenarios["connect_storm"] = {}
        for mode, one_room in (("rooms", False), ("one_room", True)):
            runs = {kind: await connect_storm(main[kind], kind, sizes=sizes, one_room=one_room) for kind in KINDS}
            scenarios["connect_storm"][mode] = compare(runs["product"], runs["baseline"])
        log_done("connect storm", began)

    if "fanout" in only:
        began = time.monotonic()
        scenarios["fanout"] = {}
        for members in sizes.fanout_members:
            runs = {
                kind: await traffic(
                    [main[kind]],
                    kind,
                    rooms=1,
                    members=members,
                    rate=sizes.fanout_rate,
                    seconds=sizes.fanout_seconds,
                    sizes=sizes,
                    label=f"fanout{members}",
                )
                for kind in KINDS
            }
            scenarios["fanout"][str(members)] = compare(runs["product"], runs["baseline"])
        log_done("fan-out", began)

    if "many_rooms" in only:
        began = time.monotonic()
        runs = {
            kind: await traffic(
                [main[kind]],
                kind,
                rooms=sizes.many_rooms,
                members=sizes.many_room_members,
                rate=sizes.many_rate,
                seconds=sizes.many_seconds,
                sizes=sizes,
                label="many",
            )
            for kind in KINDS
        }
        scenarios["many_rooms"] = compare(runs["product"], runs["baseline"])
        log_done("many rooms", began)

    if "scale_out" in only:
        began = time.monotonic()
        scenarios["scale_out"] = {kind: {} for kind in (*KINDS, "ratio")}
        extra: dict[str, list] = {kind: [] for kind in KINDS}
        for count in sizes.scale_processes:
            for kind in KINDS:
                while len(extra[kind]) < count - 1:
                    extra[kind].append(stack.server(kind, f"{kind}-{len(extra[kind]) + 2}"))
                scenarios["scale_out"][kind][str(count)] = await traffic(
                    [main[kind], *extra[kind][: count - 1]],
                    kind,
                    rooms=1,
                    members=sizes.scale_members,
                    rate=sizes.scale_rate,
                    seconds=sizes.scale_seconds,
                    sizes=sizes,
                    label=f"scale{count}",
                )
            scenarios["scale_out"]["ratio"][str(count)] = compare(
                scenarios["scale_out"]["product"][str(count)], scenarios["scale_out"]["baseline"][str(count)]
            )["ratio"]
        for kind in KINDS:
            for server in extra[kind]:
                server.stop()
        log_done("scale-out", began)

    if "idle" in only:
        began = time.monotonic()
        runs = {}
        for kind in KINDS:
            server = stack.server(kind, f"{kind}-idle")
            try:
                runs[kind] = await idle_capacity(server, kind, sizes=sizes)
            finally:
                server.stop()
        idle = {kind: runs[kind] for kind in KINDS}
        idle["ratio"] = {
            str(p["connections"]): ratios(p, b)
            for p, b in zip(runs["product"]["steps"], runs["baseline"]["steps"], strict=False)
        }
        scenarios["idle"] = idle
        log_done("idle capacity", began)

    if "levers" in only:
        began = time.monotonic()
        scenarios["levers"] = await levers(stack, sizes, scenarios)
        log_done("levers", began)
    return scenarios


async def levers(stack: Stack, sizes: Sizes, scenarios: dict[str, Any]) -> dict[str, Any]:
    """
    The product with one setting changed, against the product as it ships
    (measured in the same run): the channel layer, and the DynamoDB executor size.
    """
    out: dict[str, Any] = {}
    members = max(sizes.fanout_members)
    server = stack.server("product", "product-core-layer", CHAT_CHANNEL_LAYER="core")
    try:
        core = await traffic(
            [server],
            "product",
            rooms=1,
            members=members,
            rate=sizes.fanout_rate,
            seconds=sizes.fanout_seconds,
            sizes=sizes,
            label="lever-core",
        )
        core_scale = await traffic(
            [server],
            "product",
            rooms=1,
            members=sizes.scale_members,
            rate=sizes.scale_rate,
            seconds=sizes.scale_seconds,
            sizes=sizes,
            label="lever-core-scale",
        )
    finally:
        server.stop()
    shipped = scenarios.get("fanout", {}).get(str(members), {}).get("product")
    shipped_scale = scenarios.get("scale_out", {}).get("product", {}).get("1")
    out["channel_layer"] = {
        "setting": "CHAT_CHANNEL_LAYER",
        "fanout": {
            "pubsub": shipped,
            "core": core,
            "ratio_pubsub_over_core": ratios(shipped, core) if shipped else None,
        },
        "saturated": {
            "pubsub": shipped_scale,
            "core": core_scale,
            "ratio_pubsub_over_core": ratios(shipped_scale, core_scale) if shipped_scale else None,
        },
    }
    workers = {}
    for count in sizes.lever_workers:
        server = stack.server("product", f"product-workers-{count}", CHAT_DYNAMODB_MAX_WORKERS=str(count))
        try:
            workers[str(count)] = await connect_storm(server, "product", sizes=sizes, one_room=False)
        finally:
            server.stop()
    out["dynamodb_max_workers"] = {"setting": "CHAT_DYNAMODB_MAX_WORKERS", "connect_storm": workers}
    # Not a configuration to ship (one process only): how much of a connect is DynamoDB Local's.
    server = stack.server(
        "product",
        "product-memory-stores",
        CHAT_CONNECTION_STORE="chat.stores.memory.MemoryConnectionStore",
        CHAT_MESSAGE_STORE="chat.stores.memory.MemoryMessageStore",
    )
    try:
        memory = await connect_storm(server, "product", sizes=sizes, one_room=False)
        memory_rooms = await traffic(
            [server],
            "product",
            rooms=sizes.many_rooms,
            members=sizes.many_room_members,
            rate=sizes.many_rate,
            seconds=sizes.many_seconds,
            sizes=sizes,
            label="lever-memory-many",
        )
    finally:
        server.stop()
    shipped = scenarios.get("connect_storm", {}).get("rooms", {}).get("product")
    out["stores_in_memory"] = {
        "settings": "CHAT_CONNECTION_STORE, CHAT_MESSAGE_STORE = chat.stores.memory.*",
        "connect_storm": {"dynamodb": shipped, "memory": memory},
        "many_rooms": {"dynamodb": scenarios.get("many_rooms", {}).get("product"), "memory": memory_rooms},
    }
    return out


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in load]}
