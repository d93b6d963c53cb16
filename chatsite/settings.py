"""
Settings for the chat server.

This is the only module that reads the environment: each variable once, with
its default and what it is for. README.md lists them all in one table.
"""

import os
import socket
import uuid
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from chatsite.static_origin import static_origin

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name, "").strip()
    return value if value else default


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    if value is None:
        return default
    if value.lower() in {"1", "true", "yes", "on"}:
        return True
    if value.lower() in {"0", "false", "no", "off"}:
        return False
    raise ImproperlyConfigured(f"{name}={value!r} is not a boolean: use 1 or 0.")


def env_int(name: str, default: int) -> int:
    value = env(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={value!r} is not a whole number.") from None


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# --- Django ------------------------------------------------------------------

# Debug pages and a development secret key; never on in production.
DEBUG = env_bool("DJANGO_DEBUG", False)

# Signs sessions and CSRF tokens. Required unless DEBUG is on.
SECRET_KEY = env("DJANGO_SECRET_KEY")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it to a long random string, or set DJANGO_DEBUG=1 for a development run."
        )
    SECRET_KEY = "insecure-development-key-only-for-DJANGO_DEBUG"

# Host names this server answers to; WebSocket origins are checked against them.
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]")

# Origins (scheme://host[:port]) trusted for unsafe requests behind a proxy.
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "chat",
    "csp",
]

MIDDLEWARE = [
    # First: load balancers call /healthz and Prometheus scrapes /metrics by IP
    # address over http, before any host check or https redirect.
    "chat.health.HealthCheckMiddleware",
    "chat.metrics.MetricsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
]

ROOT_URLCONF = "chatsite.urls"
ASGI_APPLICATION = "chatsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Django's own database: staff users, sessions, the admin's log. SQLite on a
# laptop; DATABASE_URL (postgres://user:pass@host:5432/name) for anything shared.
DATABASE_URL = env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}")


def _database(url: str) -> dict:
    import dj_database_url

    return dj_database_url.parse(url, conn_max_age=60)


DATABASES = {"default": _database(DATABASE_URL)}
# The database password, when it comes apart from DATABASE_URL (from a secrets store).
DATABASE_PASSWORD = env("DATABASE_PASSWORD")
if DATABASE_PASSWORD:
    DATABASES["default"]["PASSWORD"] = DATABASE_PASSWORD
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Where `manage.py collectstatic` gathers static files when the app serves them itself.
STATIC_ROOT = Path(env("DJANGO_STATIC_ROOT", str(BASE_DIR / "staticfiles")))

# --- HTTPS behind a load balancer --------------------------------------------

# Production transport security: secure cookies, HSTS, redirect to https, and
# trust in the proxy's X-Forwarded-Proto. On unless DEBUG; set 0 only for
# plain-http runs on 127.0.0.1 (the tests do).
DJANGO_SECURE = env_bool("DJANGO_SECURE", not DEBUG)

# How long browsers remember to use https only (seconds), with subdomains.
DJANGO_HSTS_SECONDS = env_int("DJANGO_HSTS_SECONDS", 31536000)

# Ask to be listed in browsers' HSTS preload lists; 0 if the domain must keep http somewhere.
DJANGO_HSTS_PRELOAD = env_bool("DJANGO_HSTS_PRELOAD", True)

if DJANGO_SECURE:
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_SSL_REDIRECT = True
    # The load balancer (ALB, or nginx on Elastic Beanstalk) terminates TLS and
    # sets this header; the app is only reachable through it.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = DJANGO_HSTS_SECONDS
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = DJANGO_HSTS_PRELOAD

# --- Content Security Policy ---------------------------------------------------

# Pages run only the project's own script and styles: no inline script, and
# no other origin but the one static files come from when they are on S3 or
# CloudFront (added below, with the bucket's settings). 'self' in connect-src
# also admits the page's own ws:/wss: origin (CSP Level 3), which is all the
# chat's socket needs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:"],
        "font-src": ["'self'"],
        "connect-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}

# --- Channels ----------------------------------------------------------------

# Redis for the channel layer (redis://host:6379/0). Unset: the in-memory layer,
# which only reaches sockets held by this one process.
REDIS_URL = env("REDIS_URL")

# Instead of REDIS_URL: several Redis servers (comma-separated URLs) the layer
# is spread over. channels-redis puts each room on one of them by a hash of its
# name and the number of servers, so every process must list the same servers
# in the same order (README: "Redis shards").
REDIS_URLS = env_list("REDIS_URLS", "")
if REDIS_URL and REDIS_URLS:
    raise ImproperlyConfigured(
        "REDIS_URL and REDIS_URLS are both set. Set REDIS_URLS alone to spread the channel layer over several"
        " Redis servers (list the one in REDIS_URL there if it is one of them), or REDIS_URL alone for one."
    )
# The URLs are left out of these two: they may hold a password.
if REDIS_URL and "," in REDIS_URL:
    raise ImproperlyConfigured("REDIS_URL holds several URLs: set REDIS_URLS for several Redis servers.")
if len(set(REDIS_URLS)) != len(REDIS_URLS):
    raise ImproperlyConfigured("REDIS_URLS names one Redis server twice: list each one once.")
# The channel layer's Redis servers, in order; empty: the in-memory layer.
_REDIS_HOSTS = REDIS_URLS or ([REDIS_URL] if REDIS_URL else [])

# Which channels-redis layer carries room traffic: ``pubsub`` (one PUBLISH per
# room message, fanned out inside each process) or ``core`` (Redis lists, the
# tutorial's default). bench/README.md has the measurements behind the default.
CHAT_CHANNEL_LAYER = env("CHAT_CHANNEL_LAYER", "pubsub")
_CHANNEL_LAYER_BACKENDS = {
    # channels-redis' own, publishing in pipelines (chat/layers.py).
    "pubsub": "chat.layers.RedisPubSubChannelLayer",
    # channels-redis' own, but sending to a process's channel on the Redis it reads (chat/layers.py).
    "core": "chat.layers.RedisChannelLayer",
}
if CHAT_CHANNEL_LAYER not in _CHANNEL_LAYER_BACKENDS:
    raise ImproperlyConfigured(f"CHAT_CHANNEL_LAYER={CHAT_CHANNEL_LAYER!r} is not a channel layer: use pubsub or core.")

if _REDIS_HOSTS:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": _CHANNEL_LAYER_BACKENDS[CHAT_CHANNEL_LAYER],
            "CONFIG": {"hosts": _REDIS_HOSTS, "prefix": env("CHAT_REDIS_PREFIX", "chat")},
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            # Room traffic reaches the relay through one channel: room for bursts.
            "CONFIG": {"capacity": 10000},
        }
    }

# --- Chat --------------------------------------------------------------------

# AWS region for DynamoDB and S3.
AWS_REGION = env("AWS_REGION", "us-east-1")

# DynamoDB endpoint, e.g. http://127.0.0.1:8001 for DynamoDB Local; unset is AWS.
DYNAMODB_ENDPOINT_URL = env("DYNAMODB_ENDPOINT_URL")

# The table of live connections, keyed by connectionId.
CHAT_CONNECTIONS_TABLE = env("CHAT_CONNECTIONS_TABLE", "ChatConnections")

# The table of server-process heartbeats, used to sweep what a dead process held.
CHAT_INSTANCES_TABLE = env("CHAT_INSTANCES_TABLE", "ChatInstances")

# The table of room history.
CHAT_MESSAGES_TABLE = env("CHAT_MESSAGES_TABLE", "ChatMessages")

# The table of each room's seq counter, and of recent sends by clientMessageId.
CHAT_ROOMS_TABLE = env("CHAT_ROOMS_TABLE", "ChatRooms")

# Seconds between a server process's heartbeats; a process silent for one and
# a half intervals is taken for dead and its connections are swept.
CHAT_HEARTBEAT_INTERVAL = env_int("CHAT_HEARTBEAT_INTERVAL", 30)

_DYNAMODB_OPTIONS = {
    "region_name": AWS_REGION,
    "endpoint_url": DYNAMODB_ENDPOINT_URL,
    # Threads for boto3 calls, and botocore's HTTP pool of the same size.
    "max_workers": env_int("CHAT_DYNAMODB_MAX_WORKERS", 32),
}

# Where live connections and heartbeats are recorded: a dotted path to a ConnectionStore.
CHAT_CONNECTION_STORE = {
    "BACKEND": env("CHAT_CONNECTION_STORE", "chat.stores.dynamodb.DynamoDBConnectionStore"),
    "OPTIONS": {
        **_DYNAMODB_OPTIONS,
        "table_name": CHAT_CONNECTIONS_TABLE,
        "instances_table_name": CHAT_INSTANCES_TABLE,
        # One heartbeat write may take a quarter of an interval (README: "Nobody stuck").
        "heartbeat_timeout": CHAT_HEARTBEAT_INTERVAL / 4,
    },
}

# Where room history is kept: a dotted path to a MessageStore.
CHAT_MESSAGE_STORE = {
    "BACKEND": env("CHAT_MESSAGE_STORE", "chat.stores.dynamodb.DynamoDBMessageStore"),
    "OPTIONS": {**_DYNAMODB_OPTIONS, "table_name": CHAT_MESSAGES_TABLE, "rooms_table_name": CHAT_ROOMS_TABLE},
}
# Rooms' rules, mutes and bans: items in the ChatRooms table, beside the seq counters.
CHAT_MODERATION_STORE = {
    "BACKEND": env("CHAT_MODERATION_STORE", "chat.stores.dynamodb.DynamoDBModerationStore"),
    "OPTIONS": {**_DYNAMODB_OPTIONS, "table_name": CHAT_ROOMS_TABLE},
}
for _store in (CHAT_CONNECTION_STORE, CHAT_MESSAGE_STORE, CHAT_MODERATION_STORE):
    if not _store["BACKEND"].startswith("chat.stores.dynamodb."):
        _store["OPTIONS"] = {}

# Longest chat message, in characters after trimming.
CHAT_MAX_MESSAGE_LENGTH = env_int("CHAT_MAX_MESSAGE_LENGTH", 4000)

# Largest frame a client may send, in bytes; larger ones get an error frame.
CHAT_MAX_FRAME_BYTES = env_int("CHAT_MAX_FRAME_BYTES", 32 * 1024)

# How long room history is kept (DynamoDB TTL), in seconds.
CHAT_HISTORY_RETENTION = env_int("CHAT_HISTORY_RETENTION", 7 * 24 * 60 * 60)

# How many recent messages the welcome frame carries, and a history page holds.
CHAT_HISTORY_LIMIT = env_int("CHAT_HISTORY_LIMIT", 50)

# Most messages replayed to a client reconnecting with ?since=.
CHAT_RECOVERY_LIMIT = env_int("CHAT_RECOVERY_LIMIT", 1000)

# Seconds during which a sendMessage with a clientMessageId the same sender
# already used in the room is not sent again (the sender gets the original).
CHAT_DEDUP_WINDOW = env_int("CHAT_DEDUP_WINDOW", 10 * 60)
# Seconds after sending during which its sender may edit a message.
CHAT_EDIT_WINDOW = env_int("CHAT_EDIT_WINDOW", 15 * 60)

# A socket with no frame from its client for this long is closed (seconds).
CHAT_IDLE_TIMEOUT = env_int("CHAT_IDLE_TIMEOUT", 10 * 60)

# No socket stays open longer than this (seconds).
CHAT_MAX_CONNECTION_DURATION = env_int("CHAT_MAX_CONNECTION_DURATION", 2 * 60 * 60)

# The server pings every socket this often (seconds), whatever the client
# sends, and closes one that has not answered a ping within CHAT_PING_TIMEOUT.
CHAT_PING_INTERVAL = env_int("CHAT_PING_INTERVAL", 20)
CHAT_PING_TIMEOUT = env_int("CHAT_PING_TIMEOUT", 20)

# Most bytes this process holds for one socket that it has not yet handed to the
# kernel; a client that reads slower than its room talks is closed past it (4008).
CHAT_MAX_OUTBOUND_BYTES = env_int("CHAT_MAX_OUTBOUND_BYTES", 1024 * 1024)

# On SIGTERM, the seconds over which this process tells its sockets to reconnect
# elsewhere (1012), spread out so the reconnects do not all land at once.
CHAT_DRAIN_SECONDS = env_int("CHAT_DRAIN_SECONDS", 10)

for _name in ("CHAT_PING_INTERVAL", "CHAT_PING_TIMEOUT", "CHAT_MAX_OUTBOUND_BYTES"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]} must be at least 1.")

# Frames a client may send per second, and in one burst; a client with more
# than CHAT_FLOOD_LIMIT frames refused within CHAT_FLOOD_WINDOW seconds is
# disconnected (1008).
CHAT_RATE_LIMIT_PER_SECOND = env_int("CHAT_RATE_LIMIT_PER_SECOND", 10)
CHAT_RATE_LIMIT_BURST = env_int("CHAT_RATE_LIMIT_BURST", 20)
CHAT_FLOOD_LIMIT = env_int("CHAT_FLOOD_LIMIT", 50)
CHAT_FLOOD_WINDOW = env_int("CHAT_FLOOD_WINDOW", 10)

# Most bytes of messages one welcome frame or history page carries; past it the
# frame says so ("truncated" / "more") and the client pages on.
CHAT_MAX_HISTORY_BYTES = env_int("CHAT_MAX_HISTORY_BYTES", 256 * 1024)

# Sockets per client address, per server process: open at once (0: no limit)
# and new ones a second. Addresses in CHAT_CONNECTION_LIMIT_EXEMPT (addresses or
# networks) are not counted, so local tools and benchmarks are not limited.
CHAT_MAX_CONNECTIONS_PER_IP = env_int("CHAT_MAX_CONNECTIONS_PER_IP", 50)
CHAT_MAX_CONNECTS_PER_IP_PER_SECOND = env_int("CHAT_MAX_CONNECTS_PER_IP_PER_SECOND", 10)
CHAT_CONNECTION_LIMIT_EXEMPT = env_list("CHAT_CONNECTION_LIMIT_EXEMPT", "127.0.0.0/8,::1")
if CHAT_CONNECTION_LIMIT_EXEMPT == ["none"]:
    CHAT_CONNECTION_LIMIT_EXEMPT = []

# How many proxies in front of daphne append to X-Forwarded-For: the client is
# that many entries from the right (1 behind an ALB or Elastic Beanstalk's nginx;
# 0 for a direct run: the socket's peer address).
CHAT_TRUSTED_PROXY_HOPS = env_int("CHAT_TRUSTED_PROXY_HOPS", 0)

# Rooms with more people than this send no join/leave frames (each would go to
# everyone: a storm of N x N frames when a crowd arrives); the welcome frame's
# member list still tells each newcomer who is there.
CHAT_PRESENCE_LIMIT = env_int("CHAT_PRESENCE_LIMIT", 200)

# Whether visitors who are not logged in may chat (as guests).
CHAT_ALLOW_ANONYMOUS = env_bool("CHAT_ALLOW_ANONYMOUS", True)

# A registry item outlives its socket by at most this long (DynamoDB TTL).
CHAT_CONNECTION_TTL = env_int("CHAT_CONNECTION_TTL", 3 * 60 * 60)

# Names this server process in the registry, so a connection's holder is known.
CHAT_INSTANCE_ID = env("CHAT_INSTANCE_ID") or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"

# Bearer token for the @connections management API; unset turns token access off
# (staff sessions still work).
CHAT_MANAGEMENT_TOKEN = env("CHAT_MANAGEMENT_TOKEN")

# Bearer token Prometheus sends for GET /metrics; unset, /metrics answers only
# clients on loopback (behind CHAT_TRUSTED_PROXY_HOPS proxies, the client they saw).
CHAT_METRICS_TOKEN = env("CHAT_METRICS_TOKEN")

# --- Static files on S3 ------------------------------------------------------

# The S3 bucket for static files (django-storages' setting). Unset: the app
# serves them itself with WhiteNoise. Either way file names carry a content
# hash and are cached for a year; `manage.py collectstatic` must run first.
AWS_STORAGE_BUCKET_NAME = env("AWS_STORAGE_BUCKET_NAME")
# S3 endpoint, e.g. a local S3 server; unset is AWS.
AWS_S3_ENDPOINT_URL = env("AWS_S3_ENDPOINT_URL")
# Region of the bucket.
AWS_S3_REGION_NAME = env("AWS_S3_REGION_NAME", AWS_REGION)
# Host name pages load static files from, e.g. the CloudFront distribution's.
AWS_S3_CUSTOM_DOMAIN = env("AWS_S3_CUSTOM_DOMAIN")
# Key prefix of the static files inside the bucket.
AWS_LOCATION = env("AWS_LOCATION", "static")
# Hashed names never change content, so browsers and CloudFront keep them a year.
AWS_S3_OBJECT_PARAMETERS = {"CacheControl": "public, max-age=31536000, immutable"}
AWS_QUERYSTRING_AUTH = False  # plain, cacheable URLs
AWS_DEFAULT_ACL = None  # the bucket stays private; CloudFront reads it
AWS_S3_FILE_OVERWRITE = True

if AWS_STORAGE_BUCKET_NAME:
    _static_backend = "storages.backends.s3.S3ManifestStaticStorage"
    MIDDLEWARE.remove("whitenoise.middleware.WhiteNoiseMiddleware")
else:
    _static_backend = "whitenoise.storage.CompressedManifestStaticFilesStorage"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": _static_backend},
}

# The origin of the static URLs pages get (the bucket's, CloudFront's), or
# None when the app serves them itself: the policy admits it for the files.
STATIC_ORIGIN = static_origin(
    static_url=STATIC_URL,
    bucket=AWS_STORAGE_BUCKET_NAME,
    custom_domain=AWS_S3_CUSTOM_DOMAIN,
    endpoint_url=AWS_S3_ENDPOINT_URL,
    region=AWS_S3_REGION_NAME,
)
if STATIC_ORIGIN:
    for _directive in ("script-src", "style-src", "img-src", "font-src"):
        CONTENT_SECURITY_POLICY["DIRECTIVES"][_directive].append(STATIC_ORIGIN)

# --- Uploads (docs/uploads.md) ------------------------------------------------

# The bucket people's files go to, straight from the browser (a presigned POST).
# Unset: uploads are off. `make run` starts a local S3 and sets it.
CHAT_UPLOADS_BUCKET = env("CHAT_UPLOADS_BUCKET")
# Largest file, in bytes.
CHAT_MAX_UPLOAD_BYTES = env_int("CHAT_MAX_UPLOAD_BYTES", 10 * 1024 * 1024)
# MIME types people may upload. Only raster images are ever shown inline.
CHAT_UPLOAD_TYPES = [
    kind.strip()
    for kind in env(
        "CHAT_UPLOAD_TYPES", "image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain,application/zip"
    ).split(",")
    if kind.strip()
]
# Seconds the welcome's uploadToken is good for, and a presigned GET of an attachment.
CHAT_UPLOAD_TOKEN_TTL = env_int("CHAT_UPLOAD_TOKEN_TTL", 3600)
CHAT_ATTACHMENT_URL_TTL = env_int("CHAT_ATTACHMENT_URL_TTL", 3600)
# Uploads one sender may sign a minute.
CHAT_UPLOADS_PER_MINUTE = env_int("CHAT_UPLOADS_PER_MINUTE", 20)
# CloudFront domain serving the uploads bucket: attachment URLs use it rather than presigned GETs.
CHAT_UPLOADS_CDN_DOMAIN = env("CHAT_UPLOADS_CDN_DOMAIN")
# Where attachments are shown from (img-src) and where the page POSTs them (connect-src): nothing wider.
if CHAT_UPLOADS_BUCKET:
    _uploads_origin = static_origin(
        static_url="/", bucket=CHAT_UPLOADS_BUCKET, endpoint_url=AWS_S3_ENDPOINT_URL, region=AWS_S3_REGION_NAME
    )
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["connect-src"].append(_uploads_origin)
    if CHAT_UPLOADS_CDN_DOMAIN:
        _uploads_origin = static_origin(
            static_url="/", bucket=CHAT_UPLOADS_BUCKET, custom_domain=CHAT_UPLOADS_CDN_DOMAIN
        )
    CONTENT_SECURITY_POLICY["DIRECTIVES"]["img-src"].append(_uploads_origin)

# --- Logging -----------------------------------------------------------------

LOG_LEVEL = env("CHAT_LOG_LEVEL", "INFO")

# How log records are written: ``text`` (a readable line, the ids as key=value
# fields) or ``json`` (one JSON object per line, for CloudWatch Logs Insights).
CHAT_LOG_FORMAT = env("CHAT_LOG_FORMAT", "text")
_LOG_FORMATTERS = {"text": "chat.logs.FieldsFormatter", "json": "chat.logs.JsonFormatter"}
if CHAT_LOG_FORMAT not in _LOG_FORMATTERS:
    raise ImproperlyConfigured(f"CHAT_LOG_FORMAT={CHAT_LOG_FORMAT!r} is not a log format: use text or json.")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "chat": {"()": _LOG_FORMATTERS[CHAT_LOG_FORMAT]},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "chat"},
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "chat": {"level": LOG_LEVEL},
        "django": {"level": "INFO"},
    },
}
