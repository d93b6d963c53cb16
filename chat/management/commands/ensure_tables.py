import asyncio

from django.core.management.base import BaseCommand, CommandError

from chat.exceptions import StoreError
from chat.stores import get_connection_store


class Command(BaseCommand):
    help = "Create the DynamoDB tables the chat needs, wait until they are active, turn TTL on. Safe to run again."

    def handle(self, *args, **options) -> None:
        store = get_connection_store()
        try:
            created = asyncio.run(store.ensure_tables())
        except StoreError as error:
            raise CommandError(str(error)) from error
        if created:
            self.stdout.write(self.style.SUCCESS(f"Created {', '.join(created)}."))
        else:
            self.stdout.write("All tables exist; nothing changed.")
