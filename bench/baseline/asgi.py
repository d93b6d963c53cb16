"""
The baseline's ASGI application: ``daphne bench.baseline.asgi:application``.
Same URL as the product (``/ws/chat/<room>/``) so one load generator drives both.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.baseline.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import re_path  # noqa: E402

from .consumers import ChatConsumer  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": URLRouter([re_path(r"^ws/chat/(?:(?P<room>[^/]+)/?)?$", ChatConsumer.as_asgi())]),
    }
)
