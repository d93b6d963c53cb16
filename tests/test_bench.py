"""The benchmark's quick mode runs end to end and writes well-formed figures (never judged on timing)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.servers import KINDS
from bench.suite import SCENARIOS

from .support.processes import ROOT


@pytest.mark.timeout(400)
def test_quick_benchmark_runs_every_scenario_and_writes_consistent_figures(tmp_path):
    """Proves: `python -m bench --quick` measures product, baseline and ceiling side by side and stops by itself."""
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_AWS_RECORD_DIR", "DJANGO_SETTINGS_MODULE")}
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=360,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert record["mode"] == "quick"
    scenarios = record["scenarios"]
    assert set(scenarios) == set(SCENARIOS)

    assert KINDS == ("product", "baseline", "ceiling")
    traffic = [*scenarios["fanout"].values(), scenarios["many_rooms"]]
    for case in traffic:
        for kind in KINDS:
            figures = case[kind]
            assert figures["messages_sent"] == figures["messages_planned"] > 0
            assert figures["deliveries_expected"] == figures["messages_sent"] * figures["members_per_room"]
            assert figures["deliveries_distinct"] == figures["deliveries_received"] - figures["duplicates"]
            assert figures["lost"] == figures["deliveries_expected"] - figures["deliveries_distinct"]
            assert figures["connected"] + figures["connect_failures"] == figures["members"]
            assert figures["deliveries_received"] > 0
            latency = figures["latency_ms"]
            assert 0 <= latency["p50"] <= latency["p95"] <= latency["p99"] <= latency["max"]
            assert len(figures["latency_cdf_ms"]) == 101
        for key, other in (("ratio", "baseline"), ("ratio_to_ceiling", "ceiling")):
            assert case[key]["deliveries_per_s"] == pytest.approx(
                case["product"]["deliveries_per_s"] / case[other]["deliveries_per_s"], rel=0.01
            )
            assert "members" not in case[key]  # set-up, not a measurement

    for case in scenarios["connect_storm"].values():
        for kind in KINDS:
            figures = case[kind]
            assert figures["connected"] + figures["failures"] == figures["connections"]
            assert figures["connections_per_s"] > 0
            # The rate over time counts every completed connect once.
            rates = figures["connect_rate_per_s"]
            assert sum(rates) * figures["connect_rate_bin_s"] == pytest.approx(figures["connected"], abs=0.5)
            assert len(rates) * figures["connect_rate_bin_s"] >= figures["timeline_s"][-1]
        assert "connections_per_s" in case["ratio"] and "connections_per_s" in case["ratio_to_ceiling"]

    for kind in KINDS:
        steps = scenarios["idle"][kind]["steps"]
        assert [s["connections"] + s["failures"] for s in steps] == record["sizes"]["idle_steps"]
        assert all(s["rss_kib"] > 0 and s["ping_ms"]["p99"] is not None for s in steps)
    assert set(scenarios["idle"]["ratio_to_ceiling"]) == {
        str(s["connections"]) for s in scenarios["idle"]["product"]["steps"]
    }
    for kind in ("product", "baseline"):  # scale-out has no ceiling: its rooms live in one process
        assert set(scenarios["scale_out"][kind]) == {str(n) for n in record["sizes"]["scale_processes"]}
    assert "ceiling" not in scenarios["scale_out"]

    sockets = scenarios["sockets"]
    for kind in KINDS:
        figures = sockets[kind]
        assert figures["sockets"] == record["sizes"]["sockets"]
        assert figures["connected"] + figures["failures"] == figures["sockets"]
        assert figures["server_processes"] >= 2 and len(figures["rss_kib"]) == figures["server_processes"]
        assert len(set(figures["source_addresses"])) == figures["generator_processes"] >= 2
        assert all(address.startswith("127.0.0.") and address != "127.0.0.1" for address in figures["source_addresses"])
        assert figures["ping_ms"]["p99"] is not None and figures["echo_ms"]["p99"] is not None
        rss_growth = sum(figures["rss_kib"]) - sum(figures["rss_before_kib"])
        assert figures["rss_per_socket_kib"] == pytest.approx(rss_growth / max(1, figures["connected"]), abs=0.01)
        assert figures["dropped"] == sum(n for _, n in figures["dropped_close_codes"]) <= figures["connected"]
    product = sockets["product"]
    # Every open one registered (one dropped after the count may still be in it).
    assert product["connected"] - product["dropped"] <= product["registered"] <= product["connected"]
    assert sockets["baseline"]["registered"] is None and sockets["ceiling"]["registered"] is None
    assert "rss_per_socket_kib" in sockets["ratio"] and "rss_per_socket_kib" in sockets["ratio_to_ceiling"]
    layer = scenarios["levers"]["channel_layer"]
    assert layer["fanout"]["core"]["deliveries_received"] > 0
    assert "deliveries_per_s" in layer["fanout"]["ratio_pubsub_over_core"]
    memory = scenarios["levers"]["stores_in_memory"]["connect_storm"]["memory"]
    assert memory["connected"] + memory["failures"] == memory["connections"]
    under_uvicorn = scenarios["levers"]["asgi_server"]
    storm = under_uvicorn["connect_storm"]["uvicorn"]
    assert storm["connected"] == storm["connections"]
    assert under_uvicorn["fanout"]["uvicorn"]["deliveries_received"] > 0
    # The sockets scenario says why each failed connect attempt failed.
    assert sum(product["failed_attempts"].values()) >= product["failures"] * product["connect_attempts"]

    assert {t["met"] for t in record["targets"]} <= {True, False}
    assert len(record["targets"]) >= 8
    for name in ("latency_cdf", "connect_rate", "connects_per_second", "rss_per_connection", "scale_out", "results"):
        assert Path(record["files"][name]).is_file(), name
        if name != "results":
            assert Path(record["files"][name]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "fan-out" in done.stdout and "ratio" in done.stdout and "to ceiling" in done.stdout
    assert "sockets, " in done.stdout
