"""The origin the policy admits for static files, from each shape of the storage settings."""

import json
import os
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ImproperlyConfigured
from storages.backends.s3 import S3StaticStorage

from chatsite.static_origin import static_origin

from .conftest import TEST_SECRET_KEY
from .support.processes import ROOT

CDN = "d111111abcdef8.cloudfront.net"


@pytest.mark.parametrize(
    ("settings", "origin"),
    [
        # The app serves them itself.
        ({"static_url": "static/", "bucket": None}, None),
        ({"static_url": "/static/", "bucket": None, "custom_domain": CDN}, None),
        # An absolute STATIC_URL without a bucket (a CDN in front of the app): its origin, no path.
        ({"static_url": "https://static.example.com/assets/", "bucket": None}, "https://static.example.com"),
        ({"static_url": "http://127.0.0.1:8080/static/", "bucket": None}, "http://127.0.0.1:8080"),
        ({"static_url": "//Static.Example.com/static/", "bucket": None}, "static.example.com"),
        # CloudFront: https unless the URL protocol says otherwise; a path on the domain is not part of it.
        ({"static_url": "static/", "bucket": "chat-static", "custom_domain": CDN}, f"https://{CDN}"),
        (
            {
                "static_url": "static/",
                "bucket": "chat-static",
                "custom_domain": f"{CDN}/assets",
                "url_protocol": "http:",
            },
            f"http://{CDN}",
        ),
        (
            {"static_url": "static/", "bucket": "b", "custom_domain": "cdn.example.com:8443"},
            "https://cdn.example.com:8443",
        ),
        # The custom domain wins over the endpoint, as in S3Storage.url().
        (
            {"static_url": "static/", "bucket": "b", "custom_domain": CDN, "endpoint_url": "http://127.0.0.1:9000"},
            f"https://{CDN}",
        ),
        # Another S3 endpoint: path style, <endpoint>/<bucket>/...
        (
            {"static_url": "static/", "bucket": "chat-static", "endpoint_url": "http://127.0.0.1:9000"},
            "http://127.0.0.1:9000",
        ),
        ({"static_url": "static/", "bucket": "b", "endpoint_url": "https://s3.example.com/"}, "https://s3.example.com"),
        ({"static_url": "static/", "bucket": "b", "endpoint_url": "http://[::1]:9000"}, "http://[::1]:9000"),
        # The bucket on AWS: the host botocore names, per partition.
        (
            {"static_url": "static/", "bucket": "chat-static", "region": "us-east-1"},
            "https://chat-static.s3.amazonaws.com",
        ),
        (
            {"static_url": "static/", "bucket": "chat-static", "region": "eu-west-1"},
            "https://chat-static.s3.amazonaws.com",
        ),
        (
            {"static_url": "static/", "bucket": "chat.static", "region": "eu-west-1"},
            "https://s3.eu-west-1.amazonaws.com",
        ),
        (
            {"static_url": "static/", "bucket": "chat-static", "region": "cn-north-1"},
            "https://chat-static.s3.cn-north-1.amazonaws.com.cn",
        ),
        # An absolute STATIC_URL is ignored with a bucket: S3Storage never reads it.
        ({"static_url": "https://static.example.com/", "bucket": "b", "custom_domain": CDN}, f"https://{CDN}"),
    ],
)
def test_the_origin_is_the_one_static_urls_start_with(settings, origin):
    assert static_origin(**settings) == origin


@pytest.mark.parametrize(
    "storage",
    [
        {"bucket": "chat-static", "custom_domain": CDN},
        {"bucket": "chat-static", "custom_domain": f"{CDN}/assets", "url_protocol": "http:"},
        {"bucket": "chat-static", "endpoint_url": "http://127.0.0.1:9000"},
        {"bucket": "chat-static", "region": "eu-west-1"},
        {"bucket": "chat.static", "region": "eu-west-1"},
        {"bucket": "chat-static", "region": "us-gov-west-1"},
        {"bucket": "chat-static", "region": "cn-north-1"},
    ],
)
def test_the_origin_is_that_of_the_urls_django_storages_writes(storage):
    written = S3StaticStorage(
        bucket_name=storage["bucket"],
        custom_domain=storage.get("custom_domain"),
        url_protocol=storage.get("url_protocol", "https:"),
        endpoint_url=storage.get("endpoint_url"),
        region_name=storage.get("region"),
        location="static",
    ).url("chat/chat.css")
    parts = urlsplit(written)
    assert static_origin(static_url="static/", **storage) == f"{parts.scheme}://{parts.netloc}", written


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"static_url": "static/", "bucket": "b", "custom_domain": f"https://{CDN}"}, "AWS_S3_CUSTOM_DOMAIN="),
        ({"static_url": "static/", "bucket": "b", "custom_domain": "cdn example.com"}, "AWS_S3_CUSTOM_DOMAIN="),
        ({"static_url": "static/", "bucket": "b", "custom_domain": "cdn.example.com:port"}, "AWS_S3_CUSTOM_DOMAIN="),
        (
            {"static_url": "static/", "bucket": "b", "custom_domain": CDN, "url_protocol": "https"},
            "AWS_S3_URL_PROTOCOL=",
        ),
        ({"static_url": "static/", "bucket": "b", "endpoint_url": "127.0.0.1:9000"}, "AWS_S3_ENDPOINT_URL="),
        ({"static_url": "static/", "bucket": "b", "endpoint_url": "ftp://s3.example.com"}, "AWS_S3_ENDPOINT_URL="),
        ({"static_url": "static/", "bucket": "b", "region": "not a region!"}, "AWS_S3_REGION_NAME="),
        ({"static_url": "static/", "bucket": "no/slashes", "region": "us-east-1"}, "AWS_STORAGE_BUCKET_NAME="),
        ({"static_url": "https:///static/", "bucket": None}, "STATIC_URL="),
        ({"static_url": "ftp://static.example.com/", "bucket": None}, "STATIC_URL="),
    ],
)
def test_a_malformed_value_is_refused_naming_its_setting(settings, named):
    with pytest.raises(ImproperlyConfigured, match=named):
        static_origin(**settings)


def policy(**env: str) -> dict[str, str]:
    """The policy's directives, as chatsite/settings.py builds them from the environment ``env``."""
    code = (
        "import django, json; django.setup(); from django.conf import settings; "
        "print(json.dumps({k: ' '.join(v) for k, v in settings.CONTENT_SECURITY_POLICY['DIRECTIVES'].items()}))"
    )
    clean = {
        key: value for key, value in os.environ.items() if not key.startswith(("DJANGO_", "AWS_S3_", "AWS_STORAGE_"))
    }
    clean.update(DJANGO_SETTINGS_MODULE="chatsite.settings", DJANGO_SECRET_KEY=TEST_SECRET_KEY, **env)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=clean, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


def test_with_cloudfront_the_policy_admits_it_for_the_files_and_nothing_else():
    own = policy()
    deployed = policy(AWS_STORAGE_BUCKET_NAME="chat-static", AWS_S3_CUSTOM_DOMAIN=CDN)
    files = {"script-src", "style-src", "img-src", "font-src"}
    assert deployed == {name: f"{value} https://{CDN}" if name in files else value for name, value in own.items()}
    assert "http" not in " ".join(own.values())
