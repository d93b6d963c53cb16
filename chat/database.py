"""
Django's own database (staff users, sessions, the admin's log) seen from the
chat: whether its tables are there. Guests can chat without them, but logins,
the admin and the check that a guest does not pass for a registered user
need them, so a server started before ``python manage.py migrate`` says so.
"""

import logging

from channels.db import database_sync_to_async
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.migrations.executor import MigrationExecutor

logger = logging.getLogger(__name__)

MIGRATE = "python manage.py migrate"

# Whether this process has said that guests' names go unchecked (it says so once).
_names_unchecked_reported = False


def unapplied_migrations(using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """The migrations the database still lacks, as ``app_label.name``, in the order they would be applied."""
    executor = MigrationExecutor(connections[using])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [f"{migration.app_label}.{migration.name}" for migration, _backwards in plan]


def warn_unapplied_migrations() -> None:
    """Log one warning naming ``python manage.py migrate`` if the database lacks migrations; never raise for it."""
    try:
        pending = unapplied_migrations()
    except DatabaseError as error:
        logger.warning("Django's database could not be read to look for unapplied migrations: %s", error)
        return
    if pending:
        apps = ", ".join(sorted({name.partition(".")[0] for name in pending}))
        logger.warning(
            "Django's database lacks %d migration(s) (%s): run `%s`. Until then nobody can log in "
            "and a guest may take a registered user's name.",
            len(pending),
            apps,
            MIGRATE,
        )


async def check_migrations() -> None:
    """``warn_unapplied_migrations`` off the event loop: a task of its own when a server starts."""
    try:
        await database_sync_to_async(warn_unapplied_migrations)()
    except Exception:
        logger.exception("the check for unapplied migrations failed")


def report_names_unchecked(error: DatabaseError) -> None:
    """Say, once per process, that guests' names cannot be checked against registered users."""
    global _names_unchecked_reported
    if _names_unchecked_reported:
        return
    _names_unchecked_reported = True
    logger.warning("guest names are not checked against registered users: Django's database cannot be read (%s)", error)
