from django.urls import path, re_path

from . import api, views
from .moderation import api as moderation
from .uploads import views as uploads

app_name = "chat"

urlpatterns = [
    path("", views.room, name="lobby"),
    path("@connections/<str:connection_id>", api.connection, name="connection"),
    path("rooms/", views.rooms, name="rooms"),
    path("api/uploads/", uploads.uploads, name="uploads"),
    path("@messages/<str:room>/<str:message_id>", moderation.message, name="moderate-message"),
    path("@rooms/<str:room>", moderation.room, name="moderate-room"),
    path("@rooms/<str:room>/mutes", moderation.mutes, name="mutes"),
    path("@rooms/<str:room>/mutes/<str:name>", moderation.mute, name="mute"),
    path("@bans", moderation.bans, name="bans"),
    path("@bans/<str:name>", moderation.ban, name="ban"),
    re_path(r"^chat/(?P<room>[A-Za-z0-9_-]{1,64})/$", views.room, name="room"),
]
