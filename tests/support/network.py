"""
Test hosts on this machine: Linux network namespaces joined by veth pairs
to a bridge, each with its own address in a private subnet the network
creates, so that traffic between "hosts" crosses real interfaces that a
test can cut or make lossy.

- ``TestNetwork``: builds the bridge and the hosts, and tears everything down
  (even after a failure: ``close`` is safe to call on a half-built network).
  The machine reaches every host at its address through the bridge's own.
- ``Host``: one namespace; ``command(argv)`` runs a program on it.
- faults on a host's link to another address, made with nftables inside the
  host's namespace: ``cut`` (every packet dropped both ways: a partition),
  ``lose`` (a share of the packets dropped at random: ``numgen random``),
  ``heal`` (the rules gone).

Latency comes from ``tests.support.delay_proxy`` instead: this kernel has
no ``netem``.
"""

import ipaddress
import os
import shutil
import subprocess
import uuid
from dataclasses import dataclass

FAULT_TABLE = "chatfault"
# A /24 in a private range this machine does not otherwise use; each network picks one of its own.
SUBNETS = ipaddress.ip_network("10.231.0.0/16")


def missing_tools() -> str | None:
    """A sentence saying what this machine lacks to build test hosts, or None."""
    if os.geteuid() != 0:
        return "network namespaces need root: run the tests as root (CI does)"
    lacking = [name for name, package in (("ip", "iproute2"), ("nft", "nftables")) if shutil.which(name) is None]
    if lacking:
        packages = " ".join({"ip": "iproute2", "nft": "nftables"}[name] for name in lacking)
        return f"{', '.join(lacking)} missing: apt-get install -y {packages} (bin/install-system-packages test does it)"
    return None


def _run(argv: list[str], *, stdin: str | None = None, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done


@dataclass
class Host:
    """One test host: a network namespace with one interface at ``address``."""

    name: str
    namespace: str
    address: str

    def command(self, argv: list[str]) -> list[str]:
        """``argv`` run on this host (in its namespace)."""
        return ["ip", "netns", "exec", self.namespace, *argv]

    def nft(self, rules: str) -> None:
        _run(self.command(["nft", "-f", "-"]), stdin=rules)

    def cut(self, peer: str) -> None:
        """A partition: every packet between this host and ``peer`` dropped, both ways."""
        self.lose(peer, 100)

    def lose(self, peer: str, percent: int) -> None:
        """``percent`` of the packets between this host and ``peer`` dropped at random, each way."""
        self.heal()
        match = "" if percent >= 100 else f"numgen random mod 100 < {percent} "
        self.nft(
            f"table inet {FAULT_TABLE} {{\n"
            f"  chain out {{ type filter hook output priority 0; policy accept; ip daddr {peer} {match}drop; }}\n"
            f"  chain in {{ type filter hook input priority 0; policy accept; ip saddr {peer} {match}drop; }}\n"
            "}\n"
        )

    def heal(self) -> None:
        """Every fault rule of this host removed."""
        _run(self.command(["nft", "delete", "table", "inet", FAULT_TABLE]), check=False)

    def faults(self) -> str:
        """The fault rules in force, as nftables lists them ("" when none)."""
        done = _run(self.command(["nft", "list", "table", "inet", FAULT_TABLE]), check=False)
        return done.stdout if done.returncode == 0 else ""


class TestNetwork:
    """
    A bridge with an address of the machine's own (``gateway``) and one host
    per name, each at the next address of a /24 picked from ``SUBNETS``.
    Use as a context manager, or call ``close``.
    """

    __test__ = False  # not a test class, for pytest

    def __init__(self, names: list[str]) -> None:
        problem = missing_tools()
        if problem:
            raise RuntimeError(f"the test hosts cannot be built: {problem}")
        tag = uuid.uuid4().hex[:6]
        self.bridge = f"chbr{tag}"
        subnet = list(SUBNETS.subnets(new_prefix=24))[int(tag, 16) % 256]
        addresses = [str(address) for address in subnet.hosts()]
        self.gateway = addresses[0]
        self.prefix = subnet.prefixlen
        self.hosts: dict[str, Host] = {}
        self._veths: list[str] = []
        try:
            _run(["ip", "link", "add", self.bridge, "type", "bridge"])
            _run(["ip", "addr", "add", f"{self.gateway}/{self.prefix}", "dev", self.bridge])
            _run(["ip", "link", "set", self.bridge, "up"])
            for index, name in enumerate(names, start=1):
                self.hosts[name] = self._add_host(name, f"chat{tag}-{name}", addresses[index * 10], index)
        except BaseException:
            self.close()
            raise

    def _add_host(self, name: str, namespace: str, address: str, index: int) -> Host:
        outside = f"ch{self.bridge[4:]}v{index}"
        _run(["ip", "netns", "add", namespace])
        host = Host(name, namespace, address)
        self.hosts[name] = host
        _run(["ip", "link", "add", outside, "type", "veth", "peer", "name", "eth0", "netns", namespace])
        self._veths.append(outside)
        _run(["ip", "link", "set", outside, "master", self.bridge, "up"])
        _run(["ip", "-n", namespace, "addr", "add", f"{address}/{self.prefix}", "dev", "eth0"])
        _run(["ip", "-n", namespace, "link", "set", "eth0", "up"])
        _run(["ip", "-n", namespace, "link", "set", "lo", "up"])
        return host

    def __getitem__(self, name: str) -> Host:
        return self.hosts[name]

    def __enter__(self) -> "TestNetwork":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def close(self) -> None:
        """Every namespace, veth and the bridge removed; what is already gone is passed over."""
        for host in self.hosts.values():
            _run(["ip", "netns", "delete", host.namespace], check=False)
        for veth in self._veths:
            _run(["ip", "link", "delete", veth], check=False)
        _run(["ip", "link", "delete", self.bridge], check=False)
        self.hosts = {}
        self._veths = []
