"""Settings for the test run: the project's own, with a key so they load without a deployment's environment."""

import os

os.environ.setdefault("DJANGO_SECRET_KEY", "test-secret-key-not-for-deployment-0123456789abcdef")
# The test client speaks plain http.
os.environ.setdefault("DJANGO_SECURE", "0")

from chatsite.settings import *  # noqa: F403
