from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from chat.uploads.storage import ensure_bucket


class Command(BaseCommand):
    help = (
        "Create the uploads bucket (CHAT_UPLOADS_BUCKET) if it is missing, with CORS for the site's origin: "
        "for a local S3. On AWS, CloudFormation makes it. Safe to run again."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--origin", action="append", required=True, help="a site origin, e.g. http://127.0.0.1:8000"
        )

    def handle(self, *args, origin: list[str], **options) -> None:
        if not settings.CHAT_UPLOADS_BUCKET:
            raise CommandError("CHAT_UPLOADS_BUCKET is not set: name the bucket uploads go to.")
        created = ensure_bucket(origins=origin)
        verb = "Created" if created else "Kept"
        self.stdout.write(f"{verb} the bucket {settings.CHAT_UPLOADS_BUCKET}; CORS admits {', '.join(origin)}.")
