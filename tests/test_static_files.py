"""
Static files: on S3 (moto's server, real HTTP) when a bucket is configured,
served by the app itself otherwise; hashed names and year-long caching either way.
"""

import json
import mimetypes
import re
import subprocess
import urllib.request

import pytest
from django.conf import settings
from django.contrib.staticfiles import finders

from .support.processes import ROOT
from .support.recorded import python_argv
from .support.s3 import BUCKET, S3Server

LONG_CACHE = "public, max-age=31536000, immutable"
CDN = "d111111abcdef8.cloudfront.net"


@pytest.fixture(scope="module")
def s3():
    server = S3Server().start()
    yield server
    server.stop()


def static_files() -> list[str]:
    """Every file collectstatic gathers: the project's static/ and every app's (the admin's)."""
    names = set()
    for finder in finders.get_finders():
        for path, _storage in finder.list(["CVS", ".*", "*~"]):
            names.add(path.replace("\\", "/"))
    return sorted(names)


@pytest.fixture(scope="module")
def collected(s3, server_env) -> dict[str, str]:
    """Run collectstatic against the bucket as a deployment does; return the manifest's paths."""
    done = subprocess.run(
        python_argv("manage.py", "collectstatic", "--noinput"),
        cwd=ROOT,
        env={**server_env, **s3.environment()},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    manifest = s3.client().get_object(Bucket=BUCKET, Key=f"{settings.AWS_LOCATION}/staticfiles.json")
    return json.loads(manifest["Body"].read())["paths"]


def test_collectstatic_puts_every_file_in_the_bucket_under_its_hashed_name(s3, collected):
    client = s3.client()
    expected = static_files()
    assert "admin/css/base.css" in expected
    assert sorted(collected) == expected
    for name in expected:
        hashed = collected[name]
        assert re.search(r"\.[0-9a-f]{12}(\.[^./]+)?$", hashed), hashed
        head = client.head_object(Bucket=BUCKET, Key=f"{settings.AWS_LOCATION}/{hashed}")
        assert head["ContentType"] == (mimetypes.guess_type(name)[0] or "application/octet-stream"), name
        assert head["CacheControl"] == LONG_CACHE, name


def static_urls(html: str) -> list[str]:
    """Every static file a page links or loads (their URLs all have a /static/ part)."""
    return re.findall(r'(?:href|src)="([^"]*/static/[^"]*)"', html)


def test_pages_load_static_files_from_the_bucket(s3, collected, start_server):
    server = start_server(**s3.environment())
    status, body = server.get("/admin/login/")
    assert status == 200, server.output()[-3000:]
    urls = static_urls(body.decode())
    prefix = f"{s3.endpoint}/{BUCKET}/{settings.AWS_LOCATION}/"
    assert urls and all(url.startswith(prefix) for url in urls), urls
    assert f"{prefix}{collected['admin/css/base.css']}" in urls
    # The bucket is private (CloudFront reads it): look at the objects with credentials.
    for url in urls:
        head = s3.client().head_object(Bucket=BUCKET, Key=url.removeprefix(f"{s3.endpoint}/{BUCKET}/"))
        assert head["CacheControl"] == LONG_CACHE
    status, body = server.get("/")
    assert status == 200
    assert all(url.startswith(prefix) for url in static_urls(body.decode()))


def test_pages_load_static_files_from_the_cdn_domain(s3, collected, start_server):
    server = start_server(**s3.environment(AWS_S3_CUSTOM_DOMAIN=CDN))
    for path in ("/admin/login/", "/"):
        status, body = server.get(path)
        assert status == 200, server.output()[-3000:]
        urls = static_urls(body.decode())
        assert all(url.startswith(f"https://{CDN}/{settings.AWS_LOCATION}/") for url in urls), urls
    assert f"https://{CDN}/{settings.AWS_LOCATION}/{collected['admin/css/base.css']}" in static_urls(
        server.get("/admin/login/")[1].decode()
    )


def test_without_a_bucket_the_server_serves_hashed_files_for_a_year(server):
    status, body = server.get("/admin/login/")
    assert status == 200
    urls = static_urls(body.decode())
    css = [url for url in urls if re.fullmatch(r"/static/admin/css/base\.[0-9a-f]{12}\.css", url)]
    assert css, urls
    with urllib.request.urlopen(server.url + css[0], timeout=5) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/css")
        assert "max-age=315360000" in response.headers["Cache-Control"]
        assert "immutable" in response.headers["Cache-Control"]


def test_with_debug_on_static_files_are_served_without_collectstatic(start_server, tmp_path):
    server = start_server(DJANGO_DEBUG="1", DJANGO_STATIC_ROOT=str(tmp_path / "never-collected"))
    status, body = server.get("/admin/login/")
    assert status == 200, server.output()[-3000:]
    urls = static_urls(body.decode())
    assert "/static/admin/css/base.css" in urls
    status, css = server.get("/static/admin/css/base.css")
    assert status == 200 and b"body" in css
