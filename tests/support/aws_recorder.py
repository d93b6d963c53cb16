"""
Records which AWS operations a process performs, on what, so the test run can
prove the IAM policies in ``deploy/iam/`` grant exactly what the code uses.

``install()`` registers a ``before-parameter-build`` handler on every botocore
client the process creates from then on. The handler only writes one JSON
line per distinct (operation, table/bucket/key) to a file of this process in
the run's record directory; it changes nothing about the call. A presigned
request (``generate_presigned_url``, ``generate_presigned_post``) calls
nothing, but whoever uses it is authorized by the credentials that signed
it, so it is recorded as the operation it allows, marked ``presigned``: a
presigned URL from its parameters, a presigned POST as ``PutObject`` on its
bucket and key from the ``before-sign`` of the POST's policy. Child
processes record too when they start through ``tests.support.recorded`` with
the directory in their environment (``environment()``).

Clients the tests build to look at DynamoDB Local or S3 themselves are made
inside ``unrecorded()``: they are the test's eyes, not the application.
"""

import contextlib
import functools
import json
import os
import re
import threading
from pathlib import Path

import botocore.session

ENV = "TEST_AWS_RECORD_DIR"
# Request parameters that name what an operation acts on.
RESOURCE_PARAMS = ("TableName", "IndexName", "Bucket", "Key", "Prefix")
# generate_presigned_post builds its URL from this operation's model, with only the Bucket.
PRESIGNED_POST_STAND_IN = "CreateBucket"

_lock = threading.Lock()
_local = threading.local()
_state: dict = {}


def environment() -> dict[str, str]:
    """What a child process needs in its environment to record too."""
    directory = os.environ.get(ENV)
    return {ENV: directory} if directory else {}


def install(directory: str | Path, label: str) -> None:
    """Record this process's AWS operations under ``label`` (e.g. ``daphne``) into ``directory``."""
    with _lock:
        if _state:
            return
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", label)
        _state.update(
            label=label,
            path=Path(directory) / f"{os.getpid()}-{safe}.jsonl",
            seen=set(),
        )
        original = botocore.session.Session.create_client

        @functools.wraps(original)
        def create_client(self, *args, **kwargs):
            client = original(self, *args, **kwargs)
            if not getattr(_local, "unrecorded", False):
                region = client.meta.region_name
                # An unsigned client's URLs (django-storages' plain static URLs) authorize nothing.
                signed = client.meta.config.signature_version is not botocore.UNSIGNED
                client.meta.events.register(
                    "before-parameter-build", functools.partial(_record, region=region, signed=signed)
                )
                client.meta.events.register(
                    "before-sign.s3.PutObject", functools.partial(_record_presigned_post, region=region)
                )
                client.meta.events.register("after-call", functools.partial(_record_not_found, region=region))
            return client

        botocore.session.Session.create_client = create_client


def install_from_environment(label: str) -> None:
    directory = os.environ.get(ENV)
    if directory:
        install(directory, label)


@contextlib.contextmanager
def unrecorded():
    """Clients created inside this block (in this thread) are not recorded."""
    previous = getattr(_local, "unrecorded", False)
    _local.unrecorded = True
    try:
        yield
    finally:
        _local.unrecorded = previous


def _record(params, model, context, region, signed=True, **kwargs) -> None:
    resource = {name: params[name] for name in RESOURCE_PARAMS if isinstance(params.get(name), str)}
    context["recorded_resource"] = resource
    if context.get("is_presign_request"):
        if not signed:
            return  # an unsigned URL is only a name: whoever fetches it is not authorized by us
        if model.name == PRESIGNED_POST_STAND_IN:
            return  # a presigned POST: recorded when its policy is signed (_record_presigned_post)
        resource = {**resource, "presigned": True}
    service = model.service_model.signing_name
    if isinstance(params.get("RequestItems"), dict):  # BatchWriteItem / BatchGetItem: authorized per table
        for table in params["RequestItems"]:
            _write(service, model.name, region, {**resource, "TableName": table})
        return
    if isinstance(params.get("Statements"), list) or isinstance(params.get("Statement"), str):
        # PartiQL: authorized per statement, as PartiQLSelect / PartiQLInsert / PartiQLUpdate / PartiQLDelete.
        statements = params.get("Statements") or [{"Statement": params["Statement"]}]
        for statement in statements:
            verb, table = _partiql_target(statement["Statement"])
            _write(service, f"PartiQL{verb}", region, {**resource, "TableName": table})
        return
    _write(service, model.name, region, resource)


def _partiql_target(statement: str) -> tuple[str, str]:
    """(``Select``/``Insert``/``Update``/``Delete``, table) of one PartiQL statement."""
    verb = statement.split(None, 1)[0].capitalize()
    found = re.search(r'(?:FROM|INTO|UPDATE)\s+"([^"]+)"', statement, flags=re.IGNORECASE)
    if verb not in ("Select", "Insert", "Update", "Delete") or found is None:
        raise AssertionError(f"cannot tell what this PartiQL statement acts on: {statement!r}")
    return verb, found.group(1)


def _record_presigned_post(request, region, **kwargs) -> None:
    # botocore signs a presigned POST's policy as PutObject, with the form fields (the key among
    # them) in the request's context; an ordinary PutObject's signing has no such fields.
    fields = request.context.get("s3-presign-post-fields")
    if fields is None:
        return
    bucket = request.context.get("recorded_resource", {}).get("Bucket")
    _write("s3", "PutObject", region, {"Bucket": bucket, "Key": fields["key"], "presigned": True})


def _record_not_found(http_response, model, context, region, **kwargs) -> None:
    # Whether a missing S3 key answers 404 or 403 depends on one more permission.
    if http_response is not None and http_response.status_code == 404:
        resource = {**context.get("recorded_resource", {}), "notFound": True}
        _write(model.service_model.signing_name, model.name, region, resource)


def _write(service: str, operation: str, region, resource: dict) -> None:
    record = {
        "process": _state["label"],
        "service": service,
        "operation": operation,
        "region": region,
        **resource,
    }
    line = json.dumps(record, sort_keys=True)
    with _lock:
        if line in _state["seen"]:
            return
        _state["seen"].add(line)
        with open(_state["path"], "a", encoding="utf-8") as out:
            out.write(line + "\n")


def read_records(directory: str | Path) -> list[dict]:
    """Every distinct operation recorded in ``directory`` by any process."""
    records = set()
    for path in sorted(Path(directory).glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                records.add(line)
    return [json.loads(line) for line in sorted(records)]
