"""
The chat's benchmark, against the Channels tutorial and a bare-websockets ceiling.

``python -m bench`` runs every scenario at the issue's sizes against the
product, the tutorial and the ceiling (about 25 minutes, 50,000 sockets at
the end); ``--quick`` runs a small size of each (one to two minutes). Prints
a table, writes ``bench/results/<timestamp>.json`` and PNG plots beside it,
and stops everything it started.
"""

import argparse
import asyncio
import dataclasses
import json
import logging
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from .load import raise_open_files
from .plots import draw_all
from .report import table, targets, targets_table
from .scenarios import FULL, QUICK
from .servers import Stack
from .suite import SCENARIOS, machine, run_suite

logger = logging.getLogger("bench")
RESULTS = Path(__file__).resolve().parent / "results"
# The whole run stops by itself after this long, whatever happens.
TIME_LIMIT = {"full": 45 * 60, "quick": 5 * 60}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.strip().splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small size of every scenario (one to two minutes)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for the results file and plots")
    parser.add_argument("--only", nargs="+", choices=SCENARIOS, default=list(SCENARIOS), help="scenarios to run")
    parser.add_argument("--profile", type=Path, help="record the product with py-spy (raw stacks) into this directory")
    parser.add_argument(
        "--sockets",
        type=int,
        metavar="N",
        help=f"sockets of the many-sockets scenario (default {FULL.sockets:,}; quick: {QUICK.sockets})",
    )
    args = parser.parse_args(argv)
    if args.sockets is not None and args.sockets < 1:
        parser.error(f"--sockets {args.sockets}: use 1 or more")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    # A SIGTERM stops the run the way Ctrl-C does: through every finally, stopping the servers.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))

    mode = "quick" if args.quick else "full"
    sizes = QUICK if args.quick else FULL
    if args.sockets is not None:
        sizes = dataclasses.replace(sizes, sockets=args.sockets)
    open_files = raise_open_files()
    started = datetime.now(UTC)
    began = time.monotonic()
    record = {
        "started_at": started.isoformat(timespec="seconds"),
        "mode": mode,
        "machine": {**machine(), "open_files_limit": open_files},
        "sizes": {k: list(v) if isinstance(v, tuple) else v for k, v in vars(sizes).items()},
        "notes": {
            "rate_limit": "CHAT_RATE_LIMIT_PER_SECOND and _BURST raised to 100000 for the product: "
            "the senders are machines",
            "connect_latency": "until the welcome frame (product, ceiling) or the completed handshake "
            "(baseline, no welcome)",
            "ceiling": "bench/ceiling.py: a bare websockets server, rooms in a dict, one encode per message, "
            "websockets.broadcast; not in scale-out or the levers",
            "load_generator": "asyncio + websockets; members of traffic scenarios over 2 processes from "
            "split_generator_at members, senders and connect scenarios in the main process; the many-sockets "
            "scenario over several processes, each from a source address of its own (127.0.0.2, ...)",
        },
    }
    stack = Stack()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        stack.profile_dir = args.profile
    try:
        stack.start()
        logger.info("DynamoDB Local at %s, Redis at %s", stack.dynamodb.endpoint, stack.redis_url)
        scenarios = asyncio.run(asyncio.wait_for(run_suite(stack, sizes, tuple(args.only)), TIME_LIMIT[mode]))
    finally:
        stack.stop()
    record["scenarios"] = scenarios
    record["targets"] = targets(scenarios)
    record["seconds"] = round(time.monotonic() - began, 1)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / started.strftime("%Y%m%dT%H%M%SZ")
    record["files"] = draw_all(scenarios, stem)
    path = stem.with_suffix(".json")
    record["files"]["results"] = str(path)
    path.write_text(json.dumps(record, indent=1))
    sys.stdout.write(table(scenarios) + "\n\n" + targets_table(record["targets"]) + "\n\n")
    sys.stdout.write(f"results: {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
