"""A real Prometheus server (Debian's ``prometheus`` package) scraping daphne processes, and its query API."""

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

from .processes import ManagedProcess, free_port, wait_until

SCRAPE_INTERVAL = "1s"


class PrometheusServer:
    """
    Prometheus on a free port, scraping ``/metrics`` of every target
    (``host:port``) each second with ``Authorization: Bearer <token>``,
    its database in ``directory``.
    """

    def __init__(self, targets: list[str], token: str, directory: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            raise RuntimeError(
                "Prometheus is missing: apt-get install -y prometheus (or bin/install-system-packages test)"
            )
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.targets = targets
        config = directory / "prometheus.yml"
        # JSON is YAML: the scrape configuration Prometheus reads.
        config.write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": SCRAPE_INTERVAL, "scrape_timeout": SCRAPE_INTERVAL},
                    "scrape_configs": [
                        {
                            "job_name": "chat",
                            "metrics_path": "/metrics",
                            "authorization": {"type": "Bearer", "credentials": token},
                            "static_configs": [{"targets": targets}],
                        }
                    ],
                }
            )
        )
        argv = [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={directory / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--log.level=warn",
        ]
        self.process = ManagedProcess("prometheus", argv)

    def start(self, timeout: float = 30) -> "PrometheusServer":
        self.process.start()
        self.process.wait_ready(lambda: self._get("/-/ready") is not None, timeout=timeout)
        return self

    def stop(self) -> None:
        self.process.stop()

    def _get(self, path: str, **query: str) -> dict | None:
        url = self.url + path + ("?" + urllib.parse.urlencode(query) if query else "")
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body.startswith(b"{") else {}

    def targets_up(self) -> bool:
        """Whether the last scrape of every target succeeded."""
        active = self._get("/api/v1/targets")["data"]["activeTargets"]
        return len(active) == len(self.targets) and all(target["health"] == "up" for target in active)

    def wait_until_scraping(self, timeout: float = 30) -> None:
        try:
            wait_until(self.targets_up, timeout=timeout, what="Prometheus scraping every target")
        except TimeoutError as error:
            raise TimeoutError(
                f"{error}: {self._get('/api/v1/targets')}; its output:\n{self.process.output()}"
            ) from None

    def query(self, expression: str) -> dict[str, float]:
        """An instant query's result: each series' ``instance`` label (``""`` when aggregated away) -> its value."""
        answer = self._get("/api/v1/query", query=expression)
        assert answer["status"] == "success", answer
        return {series["metric"].get("instance", ""): float(series["value"][1]) for series in answer["data"]["result"]}

    def value(self, expression: str) -> float | None:
        """The one value of an aggregating query (``sum(...)``), or None while it has no series."""
        result = self.query(expression)
        return next(iter(result.values())) if result else None
