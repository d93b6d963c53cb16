from django.urls import re_path

from .consumers import ChatConsumer, RefuseConsumer

websocket_urlpatterns = [
    # The room is checked by the consumer, which refuses bad names at the handshake.
    re_path(r"^ws/chat/(?:(?P<room>[^/]+)/?)?$", ChatConsumer.as_asgi()),
    re_path(r"", RefuseConsumer.as_asgi()),
]
