"""Which pages may open a socket."""

from channels.security.websocket import OriginValidator
from django.conf import settings


class AllowedHostsOriginValidator(OriginValidator):
    """
    Browsers always send ``Origin``: a page from a host outside
    ``ALLOWED_HOSTS`` is refused. Clients that send none (command-line tools,
    backend services) are not browsers, so cross-site hijacking does not
    apply to them and they are let through.
    """

    def __init__(self, application):
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = ["localhost", "127.0.0.1", "[::1]"]
        super().__init__(application, allowed)

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return super().valid_origin(parsed_origin)
