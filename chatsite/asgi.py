"""
The ASGI application daphne serves: Django for HTTP, the chat consumer for
WebSockets. ``daphne chatsite.asgi:application`` runs it.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from chat import daphne_close_codes, daphne_lifecycle, daphne_sockets  # noqa: E402
from chat.origins import AllowedHostsOriginValidator  # noqa: E402
from chat.routing import websocket_urlpatterns  # noqa: E402
from chat.stores import get_connection_store, get_message_store  # noqa: E402

daphne_close_codes.install()
daphne_sockets.install()
daphne_lifecycle.install()

# Build the stores now, so bad options stop the server at startup.
get_connection_store()
get_message_store()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
