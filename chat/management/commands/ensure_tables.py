import asyncio

from django.core.management.base import BaseCommand, CommandError

from chat.exceptions import StoreError
from chat.stores import get_connection_store, get_message_store


class Command(BaseCommand):
    help = "Create the DynamoDB tables the chat needs, wait until they are active, turn TTL on. Safe to run again."

    def handle(self, *args, **options) -> None:
        async def ensure() -> list[str]:
            return [*await get_connection_store().ensure_tables(), *await get_message_store().ensure_tables()]

        try:
            created = asyncio.run(ensure())
        except StoreError as error:
            raise CommandError(str(error)) from error
        if created:
            self.stdout.write(self.style.SUCCESS(f"Created {', '.join(created)}."))
        else:
            self.stdout.write("All tables exist; nothing changed.")
