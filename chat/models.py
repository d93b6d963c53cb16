"""
Django models of the chat app. Live connections are not kept in Django's
database: they live in the connection registry (DynamoDB). ``LiveConnection``
is unmanaged and has no table; it exists so the admin lists "Connections",
so its permissions exist, and so the admin's log can name what was acted on.
"""

from django.db import models

# The moderation permissions (declared on LiveConnection and ModeratedRoom below), as has_perm names them.
MODERATE_MESSAGES = "chat.moderate_messages"  # delete anyone's message: an operator
MODERATE_PEOPLE = "chat.moderate_people"
MODERATE_ROOMS = "chat.moderate_rooms"
VIEW_ROOMS = "chat.view_moderatedroom"


class LiveConnection(models.Model):
    """A live WebSocket as the admin's log names it; read from the registry, never from this database."""

    connection_id = models.CharField(primary_key=True, max_length=128)
    room = models.CharField(max_length=64, blank=True)
    name = models.CharField(max_length=64, blank=True)

    class Meta:
        managed = False
        verbose_name = "connection"
        verbose_name_plural = "connections"
        default_permissions = ("view",)
        permissions = [
            ("disconnect_connection", "Can disconnect live connections"),
            ("message_connection", "Can send system messages to live connections"),
            ("moderate_messages", "Can delete any chat message"),
            ("moderate_people", "Can mute and ban people"),
            ("moderate_rooms", "Can set slow mode on rooms and lock them"),
        ]

    def __str__(self) -> str:
        if self.name:
            return f"{self.name} ({self.connection_id}) in {self.room}"
        return self.connection_id


class ModeratedRoom(models.Model):
    """A room as the admin's log and its Rooms page name it; its moderation lives in the moderation store."""

    name = models.CharField(primary_key=True, max_length=64)

    class Meta:
        managed = False
        verbose_name = "room"
        verbose_name_plural = "rooms"
        default_permissions = ("view",)

    def __str__(self) -> str:
        return f"#{self.name}"
