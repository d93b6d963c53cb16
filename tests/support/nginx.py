"""
Debian's nginx in front of local daphne processes, configured as Elastic
Beanstalk configures it on Amazon Linux 2023.

Beanstalk's own ``nginx.conf`` includes ``conf.d/*.conf`` in the http
context and ``conf.d/elasticbeanstalk/*.conf`` inside its default server
(port 80); the project's ``.platform/nginx/`` files land in those two
folders. The main file here has the same shape, and includes the project's
files where they are, as committed. One is rendered: ``daphne-upstream.conf``,
whose single ``server 127.0.0.1:8000;`` (the Procfile's daphne) becomes one
line per local daphne. What nginx writes (pid, access log, temporary files)
goes to a directory of its own (its error log to the process's log, kept
like daphne's), and it listens on a free port of 127.0.0.1.
"""

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from .processes import ROOT, ManagedProcess, free_port, http_get, port_open

PLATFORM = ROOT / ".platform" / "nginx"
UPSTREAM = PLATFORM / "conf.d" / "daphne-upstream.conf"
# The upstream's server as Beanstalk runs it: the Procfile's daphne.
BEANSTALK_SERVER = "server 127.0.0.1:8000;"

# The access log as JSON lines: which daphne answered each request (a list when nginx asked several).
LOG_FORMAT = (
    '{"request": "$request", "status": "$status", '
    '"upstream_addr": "$upstream_addr", "upstream_status": "$upstream_status"}'
)

MAIN = """\
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log stderr info;

events {{
    worker_connections 1024;
}}

http {{
    log_format chat escape=json '{log_format}';
    access_log {dir}/access.log chat;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;

    # Beanstalk's nginx.conf: the project's http-context files, then the map
    # it defines itself (so a project file defining it too fails here as there).
{http_includes}
    map $http_upgrade $connection_upgrade {{
        default "upgrade";
    }}

    server {{
        listen 127.0.0.1:{port};
        client_header_timeout 60;
        client_body_timeout 60;
        keepalive_timeout 60;
        gzip off;
        include {platform}/conf.d/elasticbeanstalk/*.conf;
    }}
}}
"""


def render_upstream(ports: list[int]) -> str:
    """``daphne-upstream.conf`` as committed, with the Procfile's daphne replaced by one server per port."""
    text = UPSTREAM.read_text()
    assert text.count(BEANSTALK_SERVER) == 1, f"{UPSTREAM} should list {BEANSTALK_SERVER!r} once"
    return text.replace(BEANSTALK_SERVER, "\n    ".join(f"server 127.0.0.1:{port};" for port in ports))


class NginxServer:
    """One nginx, in the foreground, proxying to the daphnes on ``ports`` with the project's configuration."""

    def __init__(self, ports: list[int]) -> None:
        nginx = shutil.which("nginx")
        if nginx is None:
            raise RuntimeError("nginx is missing: bin/install-system-packages test (or apt-get install -y nginx)")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        # Workers run as nobody: they must reach the directory through a world-readable path.
        self.dir = Path(tempfile.mkdtemp(prefix="nginx-"))
        self.dir.chmod(0o755)
        (self.dir / "daphne-upstream.conf").write_text(render_upstream(ports))
        includes = [self.dir / "daphne-upstream.conf" if path == UPSTREAM else path for path in self.http_files()]
        self.conf = self.dir / "nginx.conf"
        self.conf.write_text(
            MAIN.format(
                dir=self.dir,
                port=self.port,
                platform=PLATFORM,
                log_format=LOG_FORMAT,
                http_includes="\n".join(f"    include {path};" for path in includes),
            )
        )
        self.argv = [nginx, "-p", str(self.dir), "-c", str(self.conf), "-e", "stderr"]
        self.process = ManagedProcess("nginx", self.argv)

    @staticmethod
    def http_files() -> list[Path]:
        """The project's http-context files, in the order nginx's ``include conf.d/*.conf`` takes them."""
        return sorted((PLATFORM / "conf.d").glob("*.conf"))

    def check_config(self, flag: str = "-t") -> subprocess.CompletedProcess:
        """``nginx -t`` on this configuration (``-T``: and print it whole, included files and all)."""
        return subprocess.run([*self.argv, flag], capture_output=True, text=True, timeout=30)

    def start(self, timeout: float = 10) -> "NginxServer":
        self.process.start()
        self.process.wait_ready(lambda: port_open(self.port), timeout=timeout)
        return self

    def stop(self) -> None:
        # SIGTERM is nginx's fast shutdown: it closes every socket it holds at once.
        self.process.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def access_log(self) -> list[dict[str, str]]:
        """The requests nginx has finished (a WebSocket's line is written when it closes)."""
        path = self.dir / "access.log"
        lines = path.read_text().splitlines() if path.exists() else []
        return [json.loads(line) for line in lines if line.strip()]

    def output(self) -> str:
        """What nginx logged (its error log), kept after it stops."""
        return self.process.output()

    def get(self, path: str, timeout: float = 5) -> tuple[int, bytes]:
        return http_get(self.url + path, timeout)


def upstream_hops(entry: dict[str, str]) -> list[tuple[str, str]]:
    """(daphne address, its status) for each daphne nginx asked for one request, in order."""
    addresses = [a.strip() for a in entry["upstream_addr"].split(",")]
    statuses = [s.strip() for s in entry["upstream_status"].split(",")]
    return list(zip(addresses, statuses, strict=True))
