# The chat server: daphne serving chatsite.asgi on port 8000, as the Procfile runs it.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /app
COPY requirements.txt .
# The server runs as its own unprivileged user and group, both id 10001:
# numeric in USER below, so any host or orchestrator resolves it the same.
RUN pip install -r requirements.txt \
    && groupadd --system --gid 10001 chat \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /app chat

COPY . .
# Static files under hashed names for the app to serve itself. With an S3
# bucket, run `manage.py collectstatic` once per release instead (see docs/).
RUN DJANGO_SECRET_KEY=only-for-collectstatic-at-build AWS_STORAGE_BUCKET_NAME="" \
    python manage.py collectstatic --noinput -v 0

USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
# A command rather than an entrypoint, so one-off tasks (migrate,
# collectstatic) can replace it. Same command as the Procfile.
CMD ["daphne", "-b", "0.0.0.0", "-p", "8000", "chatsite.asgi:application"]
