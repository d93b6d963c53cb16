"""
The origin pages load their static files from, for the Content-Security-Policy.

``static_origin`` takes the storage settings as values and gives the
``scheme://host[:port]`` that the pages' ``{% static %}`` URLs start with.
"""

import re
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured


def static_origin(
    *,
    static_url: str,
    bucket: str | None,
    custom_domain: str | None = None,
    url_protocol: str = "https:",
    endpoint_url: str | None = None,
    region: str | None = None,
) -> str | None:
    """
    The origin static files are served from, or None when it is the page's own.

    With a bucket, static URLs are those of django-storages' ``S3Storage.url()``:
    on ``custom_domain`` (CloudFront) with ``url_protocol``; else path style on
    ``endpoint_url`` (``<endpoint>/<bucket>/...``); else on the host botocore
    names for the bucket in ``region``. ``static_url`` plays no part then: the
    storage never reads it. Without a bucket the app serves them itself at
    ``static_url``, another origin only when that URL is absolute.

    Raises ImproperlyConfigured, naming the setting, for a value that makes no URL.
    """
    if bucket:
        if custom_domain:
            return _custom_domain_origin(custom_domain, url_protocol)
        if endpoint_url:
            return _origin("AWS_S3_ENDPOINT_URL", endpoint_url, endpoint_url, "e.g. http://127.0.0.1:9000")
        return _bucket_origin(bucket, region)
    if static_url.startswith("//"):
        # Protocol-relative: a source without a scheme matches the page's own, as the URL does.
        origin = _origin("STATIC_URL", static_url, "https:" + static_url, "e.g. https://static.example.com/")
        return origin.removeprefix("https://")
    if urlsplit(static_url).scheme:
        return _origin("STATIC_URL", static_url, static_url, "e.g. https://static.example.com/")
    return None


def _custom_domain_origin(custom_domain: str, url_protocol: str) -> str:
    if url_protocol not in ("https:", "http:"):
        raise ImproperlyConfigured(f"AWS_S3_URL_PROTOCOL={url_protocol!r} is not a URL protocol: use https: or http:.")
    example = "give the host alone, e.g. d111111abcdef8.cloudfront.net"
    if "://" in custom_domain or custom_domain.startswith("/"):
        raise ImproperlyConfigured(f"AWS_S3_CUSTOM_DOMAIN={custom_domain!r} is not a host name: {example}.")
    # django-storages writes "<protocol>//<custom_domain>/<name>": the domain may carry a port or a path.
    return _origin("AWS_S3_CUSTOM_DOMAIN", custom_domain, f"{url_protocol}//{custom_domain}", example)


def _bucket_origin(bucket: str, region: str | None) -> str:
    """The origin of the bucket's URLs on AWS, built by botocore as for django-storages (nothing is sent)."""
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config
    from botocore.exceptions import InvalidRegionError, ParamValidationError

    try:
        client = boto3.session.Session().client("s3", region_name=region, config=Config(signature_version=UNSIGNED))
    except InvalidRegionError:
        raise ImproperlyConfigured(f"AWS_S3_REGION_NAME={region!r} is not an AWS region, e.g. eu-west-1.") from None
    try:
        url = client.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "static"})
    except ParamValidationError:
        raise ImproperlyConfigured(
            f"AWS_STORAGE_BUCKET_NAME={bucket!r} is not an S3 bucket name: letters, digits, '.', '-' and '_'."
        ) from None
    return _origin("AWS_STORAGE_BUCKET_NAME", bucket, url, "an S3 bucket name")


def _origin(setting: str, value: str, url: str, example: str) -> str:
    """``scheme://host[:port]`` of ``url`` (made from ``value``); ImproperlyConfigured naming ``setting`` if none."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # not a number, or out of range
        port = -1
    host_ok = parts.hostname and re.fullmatch(r"[a-z0-9._-]+|[0-9a-f:.]+", parts.hostname)
    if parts.scheme not in ("https", "http") or not host_ok or port == -1:
        raise ImproperlyConfigured(f"{setting}={value!r} is not an http(s) URL with a host: {example}.")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")
