"""
The IAM policies the chat needs, generated from one table of grants.

Each ``Grant`` says which policy allows which action on which resource, and
why; adding an action the code starts calling is one more line in
``GRANTS`` (a new table is one more line in ``TABLES``). ``manage.py
iam_policy`` prints a document for the configured names; ``deploy/iam/``
holds what it prints for the default names, and the test suite checks both
that they match and that every AWS operation it performs is allowed by them
and every grant was used.
"""

from dataclasses import dataclass

from django.conf import settings
from django.contrib.staticfiles.storage import ManifestFilesMixin

from chat.uploads.storage import PREFIX as UPLOADS_PREFIX

APPLICATION = "application"
TABLE_SETUP = "table-setup"
STATIC_DEPLOY = "static-deploy"

# Policy name -> who holds it.
POLICIES = {
    APPLICATION: "the running server: the ECS task role, or the Elastic Beanstalk instance profile",
    TABLE_SETUP: "whoever runs `manage.py ensure_tables` once (not needed where CloudFormation makes the tables)",
    STATIC_DEPLOY: "whoever runs `manage.py collectstatic` to push static files to S3",
}

# Logical table name -> the setting that holds its DynamoDB table name.
TABLES = {
    "connections": "CHAT_CONNECTIONS_TABLE",
    "instances": "CHAT_INSTANCES_TABLE",
    "messages": "CHAT_MESSAGES_TABLE",
    "rooms": "CHAT_ROOMS_TABLE",
}

# The bucket named in policies printed while AWS_STORAGE_BUCKET_NAME is unset.
EXAMPLE_BUCKET = "chat-static"
# The uploads bucket named in policies printed while CHAT_UPLOADS_BUCKET is unset.
EXAMPLE_UPLOADS_BUCKET = "chat-uploads"


@dataclass(frozen=True)
class Grant:
    policy: str
    action: str
    # "table:<logical name>", "indexes:<logical name>", "bucket", "objects", "manifest" or "uploads".
    resource: str
    why: str


GRANTS = (
    # The running server: live connections.
    Grant(APPLICATION, "dynamodb:PutItem", "table:connections", "a process swept while alive puts its sockets back"),
    Grant(
        APPLICATION,
        "dynamodb:PartiQLDelete",
        "table:connections",
        "$disconnect, a sweep or an operator forgets it, up to 25 in one BatchExecuteStatement",
    ),
    Grant(
        APPLICATION,
        "dynamodb:BatchWriteItem",
        "table:connections",
        "$connect records the connection, up to 25 in one write; a draining process forgets its sockets",
    ),
    Grant(APPLICATION, "dynamodb:GetItem", "table:connections", "looks a connection up; /healthz's ping"),
    Grant(
        APPLICATION,
        "dynamodb:PartiQLUpdate",
        "table:connections",
        "records lastActiveAt, at most once a minute, up to 25 in one BatchExecuteStatement",
    ),
    Grant(APPLICATION, "dynamodb:Scan", "table:connections", "lists every live connection for operators"),
    Grant(APPLICATION, "dynamodb:Query", "indexes:connections", "room members and counts; a dead process's sockets"),
    # The running server: heartbeats of server processes.
    Grant(APPLICATION, "dynamodb:UpdateItem", "table:instances", "heartbeats (learning if swept); a sweeper's claim"),
    Grant(APPLICATION, "dynamodb:GetItem", "table:instances", "whether a connection's process is alive"),
    Grant(APPLICATION, "dynamodb:Scan", "table:instances", "the sweeper lists server processes to find dead ones"),
    Grant(
        APPLICATION, "dynamodb:DeleteItem", "table:instances", "a sweeper forgets a dead process; a drained one leaves"
    ),
    # The running server: room history.
    Grant(APPLICATION, "dynamodb:BatchWriteItem", "table:messages", "stores each message sent, up to 25 in one write"),
    Grant(APPLICATION, "dynamodb:Query", "table:messages", "welcome history, ?since= recovery, the history action"),
    Grant(APPLICATION, "dynamodb:GetItem", "table:messages", "the original of a resent message; a message reacted to"),
    Grant(APPLICATION, "dynamodb:UpdateItem", "table:messages", "reactions, edits and deletes change a message"),
    Grant(APPLICATION, "dynamodb:Query", "indexes:messages", "a cursor given as a message id (id-index)"),
    # The running server: each room's seq, and recent sends by clientMessageId.
    Grant(
        APPLICATION,
        "dynamodb:PartiQLUpdate",
        "table:rooms",
        "gives messages their seqs, up to 25 rooms in one BatchExecuteStatement",
    ),
    Grant(APPLICATION, "dynamodb:UpdateItem", "table:rooms", "a room's first seq (an atomic ADD); moderation"),
    Grant(APPLICATION, "dynamodb:PutItem", "table:rooms", "claims a clientMessageId; a slow-mode turn (conditional)"),
    Grant(APPLICATION, "dynamodb:GetItem", "table:rooms", "finds the seq a resent message got; the bans"),
    Grant(APPLICATION, "dynamodb:BatchGetItem", "table:rooms", "reads rooms' moderation rules, up to 25 in one call"),
    # The running server: static files on S3.
    Grant(APPLICATION, "s3:GetObject", "manifest", "reads the static manifest to name hashed files (S3 only)"),
    # The running server: files people upload (the browser's POST is authorized by the server's signature).
    Grant(APPLICATION, "s3:PutObject", "uploads", "signs the presigned POST a browser uploads a file with"),
    Grant(APPLICATION, "s3:GetObject", "uploads", "checks an attachment (HeadObject); signs presigned GETs"),
    Grant(APPLICATION, "s3:PutObjectTagging", "uploads", "tags an attachment chat-sent=yes once its message is sent"),
    Grant(APPLICATION, "s3:DeleteObject", "uploads", "deleting a message deletes its attachments"),
    # Creating the tables.
    *(
        Grant(TABLE_SETUP, action, f"table:{table}", why)
        for table in TABLES
        for action, why in (
            ("dynamodb:DescribeTable", "finds whether the table exists and is active"),
            ("dynamodb:CreateTable", "creates the table (and its indexes) if missing"),
            ("dynamodb:DescribeTimeToLive", "finds whether TTL is on"),
            ("dynamodb:UpdateTimeToLive", "turns TTL on for expiresAt"),
        )
    ),
    # Pushing static files.
    Grant(STATIC_DEPLOY, "s3:PutObject", "objects", "uploads each file under its hashed name, and the manifest"),
    Grant(STATIC_DEPLOY, "s3:GetObject", "objects", "reads files back to hash them, and the previous manifest"),
    Grant(STATIC_DEPLOY, "s3:DeleteObject", "objects", "replaces a stylesheet or the manifest rewritten in place"),
    Grant(STATIC_DEPLOY, "s3:ListBucket", "bucket", "lets a missing file answer 404, not 403, so it is uploaded"),
)


@dataclass(frozen=True)
class Names:
    """
    What policies name: the region and account of the tables, the table names, the static
    files' bucket and its prefix, and the uploads bucket.
    """

    region: str
    account: str
    tables: dict[str, str]
    bucket: str
    location: str
    uploads_bucket: str

    @classmethod
    def from_settings(cls, account: str = "*") -> "Names":
        return cls(
            region=settings.AWS_REGION,
            account=account,
            tables={key: getattr(settings, setting) for key, setting in TABLES.items()},
            bucket=settings.AWS_STORAGE_BUCKET_NAME or EXAMPLE_BUCKET,
            location=settings.AWS_LOCATION,
            uploads_bucket=settings.CHAT_UPLOADS_BUCKET or EXAMPLE_UPLOADS_BUCKET,
        )

    def arns(self) -> dict[str, str]:
        """Resource key of ``Grant.resource`` -> ARN."""
        arns = {}
        for key, name in self.tables.items():
            table = f"arn:aws:dynamodb:{self.region}:{self.account}:table/{name}"
            arns[f"table:{key}"] = table
            arns[f"indexes:{key}"] = f"{table}/index/*"
        prefix = f"{self.location.strip('/')}/" if self.location.strip("/") else ""
        arns["bucket"] = f"arn:aws:s3:::{self.bucket}"
        arns["objects"] = f"arn:aws:s3:::{self.bucket}/{prefix}*"
        arns["manifest"] = f"arn:aws:s3:::{self.bucket}/{prefix}{ManifestFilesMixin.manifest_name}"
        arns["uploads"] = f"arn:aws:s3:::{self.uploads_bucket}/{UPLOADS_PREFIX}/*"
        return arns


def _sid(resource: str) -> str:
    return "".join(part.capitalize() for part in resource.replace(":", "-").split("-"))


def policy_document(policy: str, names: Names) -> dict:
    """The IAM policy document of ``policy``: one statement per resource, its actions sorted."""
    if policy not in POLICIES:
        raise ValueError(f"no policy {policy!r}; choose one of {', '.join(POLICIES)}")
    arns = names.arns()
    actions: dict[str, set[str]] = {}
    for grant in GRANTS:
        if grant.policy == policy:
            actions.setdefault(grant.resource, set()).add(grant.action)
    return {
        "Version": "2012-10-17",
        "Statement": [
            {"Sid": _sid(resource), "Effect": "Allow", "Action": sorted(granted), "Resource": arns[resource]}
            for resource, granted in actions.items()
        ],
    }
