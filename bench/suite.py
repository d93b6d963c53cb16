"""
One benchmark run: start the parts, run every scenario against the product,
the baseline and the ceiling in turn, and return the figures with their
ratios. Scale-out runs the product and the baseline only, the levers the
product only: the ceiling keeps its rooms in one process's memory, so it has
nothing to spread over processes, and no settings to turn.
"""

import logging
import os
import time
from typing import Any

from tests.support.daphne import DaphneServer

from .figures import ratios, side_by_side
from .scenarios import Sizes, connect_storm, idle_capacity, many_sockets, sockets_processes, traffic
from .servers import KINDS, Stack, UvicornServer

logger = logging.getLogger(__name__)

# In the order they run; the many-sockets scenario last, as the largest.
SCENARIOS = ("connect_storm", "fanout", "many_rooms", "idle", "scale_out", "levers", "sockets")
# Scale-out runs these kinds only (see above).
SCALE_KINDS = ("product", "baseline")
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
    "sockets",
    "connect_rate_bin_s",
}


def compare(product: dict[str, Any], baseline: dict[str, Any], ceiling: dict[str, Any] | None = None) -> dict[str, Any]:
    """The figures side by side, with product/baseline and product/ceiling ratios of what they measure."""
    case = side_by_side(product, baseline, ceiling)
    for key in ("ratio", "ratio_to_ceiling"):
        if key in case:
            case[key] = {k: v for k, v in case[key].items() if k not in SETUP}
    return case


async def run_suite(stack: Stack, sizes: Sizes, only: tuple[str, ...] = SCENARIOS) -> dict[str, Any]:
    scenarios: dict[str, Any] = {}
    main = dict(zip(KINDS, stack.start_all([stack.prepare(kind, f"{kind}-main") for kind in KINDS]), strict=True))

    def log_done(name: str, began: float) -> None:
        logger.info("%s done in %.0f s", name, time.monotonic() - began)

    if "connect_storm" in only:
        began = time.monotonic()
        scenarios["connect_storm"] = {}
        for mode, one_room in (("rooms", False), ("one_room", True)):
            runs = {kind: await connect_storm(main[kind], kind, sizes=sizes, one_room=one_room) for kind in KINDS}
            scenarios["connect_storm"][mode] = compare(*(runs[kind] for kind in KINDS))
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
            scenarios["fanout"][str(members)] = compare(*(runs[kind] for kind in KINDS))
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
        scenarios["many_rooms"] = compare(*(runs[kind] for kind in KINDS))
        log_done("many rooms", began)

    if "scale_out" in only:
        began = time.monotonic()
        scenarios["scale_out"] = {kind: {} for kind in (*SCALE_KINDS, "ratio")}
        extra: dict[str, list] = {kind: [] for kind in SCALE_KINDS}
        for count in sizes.scale_processes:
            for kind in SCALE_KINDS:
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
        for kind in SCALE_KINDS:
            for server in extra[kind]:
                server.stop()
        log_done("scale-out", began)

    if "idle" in only:
        began = time.monotonic()
        runs = {}
        fresh = dict(zip(KINDS, stack.start_all([stack.prepare(kind, f"{kind}-idle") for kind in KINDS]), strict=True))
        for kind in KINDS:
            try:
                runs[kind] = await idle_capacity(fresh[kind], kind, sizes=sizes)
            finally:
                fresh[kind].stop()
        idle = {kind: runs[kind] for kind in KINDS}
        for key, other in (("ratio", "baseline"), ("ratio_to_ceiling", "ceiling")):
            idle[key] = {
                str(p["connections"]): ratios(p, o)
                for p, o in zip(runs["product"]["steps"], runs[other]["steps"], strict=False)
            }
        scenarios["idle"] = idle
        log_done("idle capacity", began)

    if "levers" in only:
        began = time.monotonic()
        scenarios["levers"] = await levers(stack, sizes, scenarios)
        log_done("levers", began)

    if "sockets" in only:
        began = time.monotonic()
        scenarios["sockets"] = compare(*[await sockets(stack, kind, sizes) for kind in KINDS])
        log_done(f"{sizes.sockets} sockets", began)
    return scenarios


async def sockets(stack: Stack, kind: str, sizes: Sizes) -> dict[str, Any]:
    """The many-sockets scenario on fresh processes of ``kind``; the product's each with an instance id to count by."""
    names = [f"{kind}-sockets-{index + 1}" for index in range(sockets_processes(sizes))]
    ids = [f"{stack.prefix}-{name}" for name in names]
    if kind == "product":
        prepared = [stack.prepare(kind, name, CHAT_INSTANCE_ID=i) for name, i in zip(names, ids, strict=True)]
    else:
        prepared = [stack.prepare(kind, name) for name in names]
    servers = stack.start_all(prepared)
    try:
        registered = (lambda: stack.registered(ids)) if kind == "product" else None
        return await many_sockets(servers, kind, sizes=sizes, registered=registered)
    finally:
        for server in servers:
            server.stop()


async def levers(stack: Stack, sizes: Sizes, scenarios: dict[str, Any]) -> dict[str, Any]:
    """
    The product with one setting changed, against the product as it ships
    (measured in the same run): the channel layer, the DynamoDB executor
    size, the stores in memory, and the ASGI server (uvicorn).
    """
    out: dict[str, Any] = {}
    members = max(sizes.fanout_members)
    server = stack.server("product", "product-core-layer", CHAT_CHANNEL_LAYER="core")
    try:
        core = await _fanout(server, sizes, members, "lever-core")
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
    # Not a configuration to ship either: the same application under another ASGI server.
    (server,) = stack.start_all([UvicornServer(stack.product_env(), name="product-uvicorn")])
    try:
        uvicorn_storm = await connect_storm(server, "product", sizes=sizes, one_room=False)
        uvicorn_fanout = await _fanout(server, sizes, members, "lever-uvicorn-fanout")
    finally:
        server.stop()
    out["asgi_server"] = {
        "setting": "uvicorn chatsite.asgi:application --ws websockets-sansio (daphne ships)",
        "connect_storm": {"daphne": shipped, "uvicorn": uvicorn_storm},
        "fanout": {"daphne": _get_fanout(scenarios, members), "uvicorn": uvicorn_fanout},
    }
    out["stores_in_memory"] = {
        "settings": "CHAT_CONNECTION_STORE, CHAT_MESSAGE_STORE = chat.stores.memory.*",
        "connect_storm": {"dynamodb": shipped, "memory": memory},
        "many_rooms": {"dynamodb": scenarios.get("many_rooms", {}).get("product"), "memory": memory_rooms},
    }
    return out


async def _fanout(server: DaphneServer, sizes: Sizes, members: int, label: str) -> dict[str, Any]:
    """The fan-out scenario's load on one product process: one room of ``members``."""
    return await traffic(
        [server],
        "product",
        rooms=1,
        members=members,
        rate=sizes.fanout_rate,
        seconds=sizes.fanout_seconds,
        sizes=sizes,
        label=label,
    )


def _get_fanout(scenarios: dict[str, Any], members: int) -> dict[str, Any] | None:
    """The shipped product's fan-out to ``members``, measured earlier in the run (None if not)."""
    return scenarios.get("fanout", {}).get(str(members), {}).get("product")


def machine() -> dict[str, Any]:
    load = os.getloadavg()
    return {"cpus": os.cpu_count(), "load_average_at_start": [round(x, 2) for x in load]}
