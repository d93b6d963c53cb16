"""
Starts and stops this process's duties with daphne.

Start: the room relay, heartbeat and sweep begin when daphne's reactor
starts, so ``/healthz`` is green before the first socket arrives; Django's
database is checked for unapplied migrations then too.

Stop: on SIGTERM, Twisted runs its "before shutdown" triggers, where daphne
cancels every consumer at once: no ``$disconnect``, no close frame (clients
see 1006), registry items left for a sweep. Here daphne's trigger first runs
``ServerInstance.drain`` (with a deadline), then does what it did.

Installed only when daphne serves the application (its server module is
loaded): importing it elsewhere would install Twisted's asyncio reactor.
"""

import asyncio
import logging
import sys

from django.conf import settings

from .database import check_migrations
from .instance import get_server_instance

logger = logging.getLogger(__name__)

# Seconds a drain may overrun CHAT_DRAIN_SECONDS (registry clean-up) before daphne's own shutdown goes on.
DRAIN_OVERRUN = 4.0


def install() -> None:
    if "daphne.server" not in sys.modules:
        return
    from daphne.server import Server
    from twisted.internet import defer, reactor

    kill_all_applications = Server.kill_all_applications

    def drain_then_kill(self: Server):
        seconds = float(settings.CHAT_DRAIN_SECONDS)

        async def drain() -> None:
            try:
                await asyncio.wait_for(get_server_instance().drain(seconds), seconds + DRAIN_OVERRUN)
            except Exception:
                logger.exception("drain did not finish; closing what is left")

        done = defer.Deferred.fromFuture(asyncio.ensure_future(drain()))
        done.addBoth(lambda _: kill_all_applications(self))
        return done

    async def start() -> None:
        try:
            await get_server_instance().start()
        except Exception:
            logger.exception("background duties did not start; the first socket tries again")

    Server.kill_all_applications = drain_then_kill
    reactor.callWhenRunning(lambda: asyncio.ensure_future(start()))
    reactor.callWhenRunning(lambda: asyncio.ensure_future(check_migrations()))
