"""The supervisor restarts a background task that dies, and says so while it is down."""

import asyncio
import logging

from chat.supervisor import Supervisor


async def wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_a_task_that_dies_is_logged_reported_and_started_again(caplog):
    runs: list[int] = []
    release = asyncio.Event()

    async def relay() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            await release.wait()
            raise RuntimeError("one bad event")
        await asyncio.Event().wait()  # runs until cancelled

    supervisor = Supervisor()
    with caplog.at_level(logging.ERROR, logger="chat.supervisor"):
        supervisor.start("relay", relay)
        await wait_for(lambda: runs == [0])
        assert supervisor.healthy()
        release.set()
        await wait_for(lambda: supervisor.state()["relay"] == "restarting")
        assert not supervisor.healthy()
        await wait_for(lambda: runs == [0, 1] and supervisor.state()["relay"] == "running")
        assert supervisor.healthy() and supervisor.tasks["relay"].restarts == 1
    assert "background task relay died" in caplog.text and "one bad event" in caplog.text
    await supervisor.stop(within=2)
    assert not supervisor.healthy()


async def test_a_task_that_returns_is_started_again():
    runs = []

    async def duty() -> None:
        runs.append(1)
        if len(runs) > 2:
            await asyncio.Event().wait()

    supervisor = Supervisor()
    supervisor.start("sweep", duty)
    await wait_for(lambda: len(runs) == 3 and supervisor.healthy())
    await supervisor.stop(within=2)
