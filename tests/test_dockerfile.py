"""
The container image, checked without a container engine: its Dockerfile
passes hadolint with the default rules, it runs as a numeric user it creates,
and its build-time collectstatic, its command and its health check run here
from the Dockerfile's own lines, with the Dockerfile's environment, and
serve the chat.
"""

import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .support import aws_recorder, dockerfile
from .support.dockerfile import Instruction
from .support.processes import ROOT, ManagedProcess, free_port, port_open
from .support.recorded import python_argv

HADOLINT = Path(sys.executable).parent / "hadolint"
# Where the image's Python finds its programs; the Dockerfile's ENV comes on top.
BASE_ENV = {"PATH": os.environ["PATH"]}
# A page script under its hashed name, as collectstatic's manifest writes it.
HASHED_SCRIPT = re.compile(r'src="(/static/chat/chat\.[0-9a-f]{12}\.js)"')


@pytest.fixture(scope="module")
def image() -> list[Instruction]:
    return dockerfile.instructions()


def only(image: list[Instruction], keyword: str) -> Instruction:
    [instruction] = [i for i in image if i.keyword == keyword]
    return instruction


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def test_hadolint_passes_on_the_dockerfile_with_its_default_rules(tmp_path):
    """
    Every rule at its default severity fails the check: an explicit config
    with an empty ignore list, and no ``HADOLINT_*`` variables, so neither a
    config file lying around nor the caller's environment can relax it.
    """
    assert HADOLINT.is_file(), f"{HADOLINT} is missing: .venv/bin/pip install -r requirements-dev.txt"
    config = tmp_path / "hadolint.yaml"
    config.write_text("ignored: []\n")
    env = {name: value for name, value in os.environ.items() if not name.startswith("HADOLINT_")}
    done = subprocess.run(
        [str(HADOLINT), "--no-color", "--config", str(config), str(dockerfile.PATH)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, f"hadolint finds fault with the Dockerfile:\n{done.stdout}{done.stderr}"


def test_the_image_runs_as_the_numeric_user_and_group_it_creates(image):
    """``USER`` is ``uid:gid`` in numbers, neither root, made by ``groupadd``/``useradd`` before it."""
    user = only(image, "USER")
    uid, _, gid = user.arguments.partition(":")
    assert uid.isdigit() and gid.isdigit() and int(uid) and int(gid), user
    commands = [
        command.split()
        for i in image[: image.index(user)]
        if i.keyword == "RUN"
        for command in re.split(r"&&|;", i.arguments)
    ]
    [groupadd] = [words for words in commands if words[0] == "groupadd"]
    [useradd] = [words for words in commands if words[0] == "useradd"]
    assert groupadd[groupadd.index("--gid") + 1] == gid, groupadd
    assert (useradd[useradd.index("--uid") + 1], useradd[useradd.index("--gid") + 1]) == (uid, gid), useradd


def test_the_image_collects_its_static_files_serves_and_passes_its_health_check(image, server_env, tmp_path):
    """
    The build's collectstatic step runs with only its inline variables and
    the ``ENV`` before it (into a temporary directory instead of the image's
    ``/app/staticfiles``), in the tree the image copies to its ``WORKDIR``.
    Then the ``CMD``, on a free port instead of the ``EXPOSE``d one, with the
    ``ENV`` and this run's DynamoDB Local and Redis, serves those files; the
    ``HEALTHCHECK`` command passes within its start period and ``/readyz``
    answers 200. Here the command runs as the current user, not the image's
    uid: this run's interpreter, database and temporary directories are
    private to it. The daphne and collectstatic processes record their AWS
    calls like every server of the suite.
    """
    workdir = only(image, "WORKDIR")
    copies = [i for i in image[image.index(workdir) :] if i.keyword == "COPY"]
    assert ". ." in [i.arguments for i in copies], "the tree is not copied into the WORKDIR"

    [build] = [i for i in image if i.keyword == "RUN" and "collectstatic" in i.arguments]
    inline, argv = dockerfile.shell_command(build.arguments)
    assert argv[:2] == ["python", "manage.py"], argv
    static_root = tmp_path / "staticfiles"
    build_env = {
        **BASE_ENV,
        **dockerfile.environment(image[: image.index(build)]),
        **inline,
        "DJANGO_STATIC_ROOT": str(static_root),
        **aws_recorder.environment(),
    }
    done = subprocess.run(python_argv(*argv[1:]), cwd=ROOT, env=build_env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"the build's collectstatic failed:\n{done.stdout}{done.stderr}"
    assert (static_root / "staticfiles.json").is_file()

    command = dockerfile.exec_form(only(image, "CMD").arguments)
    [exposed] = [port.removesuffix("/tcp") for port in only(image, "EXPOSE").arguments.split()]
    assert command[0] == "daphne" and command[command.index("-p") + 1] == exposed, command
    port = free_port()
    command[command.index("-p") + 1] = str(port)
    env = {**BASE_ENV, **dockerfile.environment(image), **server_env, "DJANGO_STATIC_ROOT": str(static_root)}
    server = ManagedProcess("image-cmd", python_argv("-m", *command), env=env)
    server.start()
    try:
        server.wait_ready(lambda: port_open(port), timeout=30)

        options, check = dockerfile.healthcheck(only(image, "HEALTHCHECK").arguments)
        address = f"127.0.0.1:{exposed}"
        assert check[0] == "python" and any(address in arg for arg in check), check
        check = [sys.executable, *(arg.replace(address, f"127.0.0.1:{port}") for arg in check[1:])]

        def healthy() -> bool:
            run = subprocess.run(
                check, cwd=ROOT, env=env, capture_output=True, text=True, timeout=dockerfile.seconds(options["timeout"])
            )
            if run.returncode != 0:
                raise AssertionError(f"the health check exited {run.returncode}: {run.stderr.strip()[-500:]}")
            return True

        server.wait_ready(healthy, timeout=dockerfile.seconds(options["start-period"]))

        base = f"http://127.0.0.1:{port}"
        status, body = get(base + "/readyz")
        assert status == 200, body
        status, page = get(base + "/")
        assert status == 200, page[-2000:]
        script = HASHED_SCRIPT.search(page)
        assert script, "the page names no hashed chat.js"
        status, body = get(base + script[1])
        assert status == 200 and body, f"{script[1]} answered {status}"
    finally:
        server.stop()
