import json

from django.core.management.base import BaseCommand

from chat.iam import POLICIES, Names, policy_document


class Command(BaseCommand):
    help = (
        "Print an IAM policy document the chat needs, for the configured table and bucket names "
        "(deploy/iam/ holds them for the default names)."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "policy",
            choices=list(POLICIES),
            help="which policy: " + "; ".join(f"{name}: {holder}" for name, holder in POLICIES.items()),
        )
        parser.add_argument(
            "--account-id", default="*", help="the AWS account of the tables (default: any account, '*')"
        )

    def handle(self, *args, **options) -> None:
        document = policy_document(options["policy"], Names.from_settings(account=options["account_id"]))
        self.stdout.write(json.dumps(document, indent=2))
