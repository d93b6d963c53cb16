from django.urls import path, re_path

from . import api, views

app_name = "chat"

urlpatterns = [
    path("", views.room, name="lobby"),
    path("@connections/<str:connection_id>", api.connection, name="connection"),
    path("rooms/", views.rooms, name="rooms"),
    re_path(r"^chat/(?P<room>[A-Za-z0-9_-]{1,64})/$", views.room, name="room"),
]
