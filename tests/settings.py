"""Settings for the test run: the project's own, with a key so they load without a deployment's environment."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-deployment-0123456789abcdef")

from chatsite.settings import *  # noqa: F403
