"""
Static files on another origin, as on AWS: collected to an S3 bucket (moto's
server over HTTP, readable by anyone as CloudFront's access makes it) and
loaded from there by the chat page and the admin in Chromium, under the
Content-Security-Policy, which admits that origin and no other.
"""

import http.server
import json
import os
import re
import subprocess
import threading
import uuid

import pytest
from django.conf import settings
from playwright.sync_api import expect

from ..support.chat_page import WAIT_MS, ChatPage
from ..support.daphne import DaphneServer
from ..support.processes import ROOT
from ..support.recorded import python_argv
from ..support.s3 import BUCKET, S3Server

# Runs before the page's own scripts: keeps every policy violation the page reports.
RECORD_VIOLATIONS = """
window.policyViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.policyViolations.push({directive: event.effectiveDirective, blocked: event.blockedURI});
});
"""
FILE_DIRECTIVES = ("script-src", "style-src", "img-src", "font-src")
PASSWORD = "correct horse battery"


def public_read(bucket: str, prefix: str) -> dict:
    """A bucket policy letting anyone read the static files, as CloudFront's origin access does for it."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "ReadStaticFiles",
                "Effect": "Allow",
                "Principal": "*",
                "Action": "s3:GetObject",
                "Resource": f"arn:aws:s3:::{bucket}/{prefix}/*",
            }
        ],
    }


@pytest.fixture(scope="module")
def s3():
    server = S3Server().start()
    server.client().put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(public_read(BUCKET, settings.AWS_LOCATION)))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def bucket_env(s3, server_env) -> dict[str, str]:
    """The run's environment with static files in the bucket, collected there as a deployment does."""
    env = {**server_env, **s3.environment()}
    done = subprocess.run(
        python_argv("manage.py", "collectstatic", "--noinput", "-v", "0"),
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return env


@pytest.fixture(scope="module")
def bucket_server(bucket_env):
    """A daphne whose pages name their static files in the bucket."""
    server = DaphneServer(bucket_env, name="daphne-s3").start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def staff(bucket_env) -> str:
    """A staff user in the server's database; its username."""
    username = f"cdn-operator-{uuid.uuid4().hex[:8]}"
    create = (
        "from django.contrib.auth import get_user_model; "
        f"get_user_model().objects.create_superuser({username!r}, 'operator@example.com', {PASSWORD!r})"
    )
    subprocess.run(
        python_argv("manage.py", "shell", "-c", create),
        cwd=ROOT,
        env={**os.environ, **bucket_env},
        check=True,
        capture_output=True,
        timeout=60,
    )
    return username


class ThirdOrigin:
    """Another origin (a free port of 127.0.0.1) serving a script and a stylesheet, counting requests."""

    FILES = {
        "/third.js": ("text/javascript", b"window.thirdPartyRan = true;"),
        "/third.css": ("text/css", b"body { outline: 5px solid red; }"),
    }

    def __init__(self) -> None:
        self.requests: list[str] = []
        origin = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                origin.requests.append(self.path)
                content_type, body = origin.FILES.get(self.path, ("text/plain", b""))
                self.send_response(200 if self.path in origin.FILES else 404)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="third-origin", daemon=True)

    def start(self) -> "ThirdOrigin":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def third_origin():
    origin = ThirdOrigin().start()
    yield origin
    origin.stop()


def directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";") if part.strip())


def assert_policy_admits_only(policy: str, origin: str) -> None:
    """The files' directives admit ``origin`` besides their own sources; nothing else names any origin."""
    found = directives(policy)
    for name in FILE_DIRECTIVES:
        assert found[name].split() == (["'self'", "data:"] if name == "img-src" else ["'self'"]) + [origin], found
    assert found["default-src"] == "'self'" and found["connect-src"] == "'self'", found
    assert set(re.findall(r"\b(?:https?|wss?)://[^\s;]+", policy)) == {origin}, policy


def static_urls(page) -> list[str]:
    """Every file the page links or loads from its markup."""
    return page.eval_on_selector_all(
        "link[href], script[src]", "elements => elements.map(element => element.href || element.src)"
    )


def assert_on_the_bucket(urls: list[str], s3: S3Server, page_origin: str, own_views: tuple[str, ...] = ()) -> None:
    """Every file is in the bucket; only ``own_views`` (pages of the app, not files) are on the page's origin."""
    prefix = f"{s3.endpoint}/{BUCKET}/{settings.AWS_LOCATION}/"
    assert urls and [url for url in urls if not url.startswith(prefix)] == [page_origin + path for path in own_views]


def violations(page) -> list[dict]:
    return page.evaluate("window.policyViolations")


def test_the_chat_page_takes_its_files_from_the_bucket_and_chats_under_the_policy(new_context, bucket_server, s3, room):
    context = new_context(name="Ann")
    context.add_init_script(RECORD_VIOLATIONS)
    ann = ChatPage.open(context, bucket_server.url, room)
    page = ann.page
    urls = static_urls(page)
    assert_on_the_bucket(urls, s3, bucket_server.url)
    assert {re.sub(r"\.[0-9a-f]{12}\.", ".", url.rsplit("/", 1)[1]) for url in urls} == {
        "favicon.svg",
        "chat.css",
        "outbox.js",
        "typing.js",
        "reactions.js",
        "message_actions.js",
        "mentions.js",
        "unread.js",
        "uploads.js",
        "chat.js",
    }

    expect(page.locator("#app")).to_have_css("display", "grid")  # chat.css
    ann.wait_online()  # chat.js ran and its socket is open
    ann.say("my page came from the bucket")
    assert violations(page) == [] and ann.csp_violations() == [] and ann.errors == []
    assert_policy_admits_only(ann.response.headers["content-security-policy"], s3.endpoint)


def test_the_policy_still_refuses_files_from_any_other_origin(new_context, bucket_server, third_origin, room):
    context = new_context(name="Ann")
    context.add_init_script(RECORD_VIOLATIONS)
    ann = ChatPage.open(context, bucket_server.url, room).wait_online()
    page = ann.page
    with page.expect_console_message(lambda message: "Content Security Policy" in message.text, timeout=WAIT_MS):
        page.evaluate(
            """origin => {
                const script = document.createElement("script");
                script.src = origin + "/third.js";
                const sheet = document.createElement("link");
                sheet.rel = "stylesheet";
                sheet.href = origin + "/third.css";
                document.head.append(script, sheet);
            }""",
            third_origin.url,
        )
    page.wait_for_function("() => window.policyViolations.length >= 2", timeout=WAIT_MS)
    assert sorted(violations(page), key=lambda found: found["directive"]) == [
        {"directive": "script-src-elem", "blocked": f"{third_origin.url}/third.js"},
        {"directive": "style-src-elem", "blocked": f"{third_origin.url}/third.css"},
    ]
    assert page.evaluate("window.thirdPartyRan") is None
    assert page.locator("body").evaluate("body => getComputedStyle(body).outlineStyle") == "none"
    # Refused before any request: the other origin, which would have answered, was never asked.
    assert third_origin.requests == []
    status = page.request.get(f"{third_origin.url}/third.js").status
    assert status == 200 and third_origin.requests == ["/third.js"]


def test_the_admin_takes_its_files_from_the_bucket_under_the_policy(new_context, bucket_server, s3, staff):
    context = new_context()
    context.add_init_script(RECORD_VIOLATIONS)
    page = context.new_page()
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))

    response = page.goto(bucket_server.url + "/admin/login/")
    assert_on_the_bucket(static_urls(page), s3, bucket_server.url)
    header = page.locator("#header")
    expect(header).to_have_css("background-color", "rgb(65, 118, 144)")  # base.css
    expect(header).to_have_css("justify-content", "center")  # login.css
    expect(page.locator("html")).to_have_attribute("data-theme", "auto")  # theme.js ran
    assert violations(page) == []
    assert_policy_admits_only(response.headers["content-security-policy"], s3.endpoint)

    page.get_by_label("Username").fill(staff)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Site administration")).to_be_visible(timeout=WAIT_MS)
    expect(header).to_have_css("display", "flex")  # base.css on the admin's index
    assert violations(page) == []
    page.goto(bucket_server.url + "/admin/auth/user/")
    expect(page.get_by_role("link", name=staff)).to_be_visible(timeout=WAIT_MS)
    # The admin's JavaScript translations are a view of the app, not a file.
    assert_on_the_bucket(static_urls(page), s3, bucket_server.url, own_views=("/admin/jsi18n/",))
    expect(page.locator("#main")).to_have_class(re.compile(r"\bshifted\b"))  # nav_sidebar.js ran
    expect(page.locator("#nav-sidebar")).to_be_visible()  # nav_sidebar.css
    assert violations(page) == []
    # The console keeps what every page of the visit reported.
    assert [line for line in console if "Content Security Policy" in line] == []
