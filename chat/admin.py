"""
The admin's "Connections": live connections read from the registry through
``chat.services``, never copied into Django's database. The list follows the
registry's own paging (DynamoDB's LastEvaluatedKey as a ``cursor``), a room
filter is an index Query, a search by id is one GetItem. Operators with the
permission disconnect connections or send them a system message, whichever
server process holds them; each action goes into the admin's log.

The admin's "Rooms" (moderation) lives in ``chat.moderation.admin`` and is
registered here.
"""

import logging
from datetime import datetime

from asgiref.sync import async_to_sync
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from . import protocol, services
from .exceptions import ConnectionGone, StoreError
from .models import VIEW_ROOMS, LiveConnection, ModeratedRoom
from .moderation.admin import ModeratedRoomAdmin
from .stores import Connection

logger = logging.getLogger(__name__)

DISCONNECT = "disconnect"
MESSAGE = "message"
ACTIONS = {
    DISCONNECT: ("Disconnect selected connections", "chat.disconnect_connection"),
    MESSAGE: ("Send a system message to selected connections", "chat.message_connection"),
}


class SystemMessageForm(forms.Form):
    text = forms.CharField(
        label="Message",
        max_length=settings.CHAT_MAX_MESSAGE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Shown to each person as a notice from the operators.",
    )


def _moment(iso: str) -> datetime | None:
    try:
        return datetime.fromisoformat(iso)
    except ValueError:
        return None


def _row(connection: Connection) -> dict:
    return {
        "connection": connection,
        "connected_at": _moment(connection.connected_at),
        "last_active_at": _moment(connection.last_active_at),
    }


@admin.register(LiveConnection)
class LiveConnectionAdmin(admin.ModelAdmin):
    list_per_page = 50

    # Nothing here is added, edited or deleted as a model: see the actions.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def allowed_actions(self, request: HttpRequest) -> dict[str, str]:
        """Action name -> label, for the actions this user may run."""
        return {name: label for name, (label, perm) in ACTIONS.items() if request.user.has_perm(perm)}

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.changelist_view), name="{}_{}_changelist".format(*info)),
            path("<str:connection_id>/", wrap(self.connection_view), name="{}_{}_change".format(*info)),
        ]

    def changelist_url(self, **query: str) -> str:
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist", current_app=self.admin_site.name
        )
        query = {key: value for key, value in query.items() if value}
        return f"{url}?{urlencode(query)}" if query else url

    def context(self, request: HttpRequest, **extra) -> dict:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "has_view_permission": True,
            # The room column links each room's moderation page for those who may see it.
            "can_view_rooms": request.user.has_perm(VIEW_ROOMS),
            **extra,
        }

    # --- The list ----------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if request.method == "POST":
            return self.action_view(request)
        room = request.GET.get("room", "").strip()
        query = request.GET.get("q", "").strip()
        cursor = request.GET.get("cursor", "").strip()
        listing = {"rows": [], "next_cursor": None, "totals": {}, "found_by_id": False}
        if room and not protocol.valid_room(room):
            messages.error(request, f"{room[:64]!r} is not a room name: rooms are 1-64 of A-Z a-z 0-9 _ -.")
        else:
            try:
                listing = async_to_sync(self.listing)(room=room or None, query=query, cursor=cursor or None)
            except StoreError as error:
                logger.error("admin listing failed: %s", error)
                messages.error(request, f"The connection registry did not answer: {error}")
        context = self.context(
            request,
            title="Live connections",
            subtitle=f"Room {room}" if room else None,
            room=room,
            query=query,
            cursor=cursor,
            actions=self.allowed_actions(request),
            per_page=self.list_per_page,
            next_url=self.changelist_url(room=room, q=query, cursor=listing["next_cursor"])
            if listing["next_cursor"]
            else None,
            first_url=self.changelist_url(room=room, q=query) if cursor else None,
            totals=[
                (name, count, count >= services.ROOM_TOTAL_LIMIT, self.changelist_url(room=name))
                for name, count in listing["totals"].items()
            ],
            total_limit=services.ROOM_TOTAL_LIMIT,
            **{key: listing[key] for key in ("rows", "found_by_id")},
            **(extra_context or {}),
        )
        return TemplateResponse(request, "admin/chat/liveconnection/change_list.html", context)

    async def listing(self, *, room: str | None, query: str, cursor: str | None) -> dict:
        """One page of rows, the next cursor, and totals for the rooms shown."""
        if query and not cursor:
            found = await services.connection_get(connection_id=query)
            if found is not None and (room is None or found.room == room):
                totals = await services.room_totals(rooms=[found.room])
                return {"rows": [_row(found)], "next_cursor": None, "totals": totals, "found_by_id": True}
        page = await services.connections_page(room=room, cursor=cursor, limit=self.list_per_page, name=query or None)
        totals = await services.room_totals(rooms=[room] if room else [c.room for c in page.items])
        return {
            "rows": [_row(c) for c in page.items],
            "next_cursor": page.cursor,
            "totals": totals,
            "found_by_id": False,
        }

    # --- One connection ----------------------------------------------------

    def connection_view(self, request: HttpRequest, connection_id: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            connection = async_to_sync(services.connection_get)(connection_id=connection_id)
        except StoreError as error:
            messages.error(request, f"The connection registry did not answer: {error}")
            return HttpResponseRedirect(self.changelist_url())
        if connection is None:
            messages.warning(request, f"Connection {connection_id} is not live: it has closed.")
            return HttpResponseRedirect(self.changelist_url())
        context = self.context(
            request,
            title=f"Connection {connection.connection_id}",
            row=_row(connection),
            actions=self.allowed_actions(request),
            changelist_url=self.changelist_url(),
            room_url=self.changelist_url(room=connection.room),
        )
        return TemplateResponse(request, "admin/chat/liveconnection/detail.html", context)

    # --- Actions -------------------------------------------------------------

    def action_view(self, request: HttpRequest) -> HttpResponse:
        action = request.POST.get("action", "")
        back = self.changelist_url(**{key: request.GET.get(key, "") for key in ("room", "q", "cursor")})
        if action not in ACTIONS:
            messages.error(request, "Choose an action to run.")
            return HttpResponseRedirect(back)
        if action not in self.allowed_actions(request):
            raise PermissionDenied
        # One page at most: an action never runs over more than the list showed.
        selected = [cid for cid in request.POST.getlist("_selected_action") if cid][: self.list_per_page]
        if not selected:
            messages.warning(request, "Select the connections to act on: none were selected.")
            return HttpResponseRedirect(back)
        if action == DISCONNECT:
            return self.run(
                request,
                selected,
                back,
                services.connection_close,
                change_message=f"Disconnected (close code {protocol.CLOSE_BY_OPERATOR}).",
                summary="Disconnected",
            )
        form = SystemMessageForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            text = form.cleaned_data["text"]

            async def notify(*, connection_id: str) -> Connection:
                return await services.connection_notify(connection_id=connection_id, message=text)

            return self.run(
                request,
                selected,
                back,
                notify,
                change_message=f"Sent a system message: {text[:150]}",
                summary="Sent the system message to",
            )
        context = self.context(request, title="Send a system message", form=form, selected=selected, back_url=back)
        return TemplateResponse(request, "admin/chat/liveconnection/message.html", context)

    def run(
        self, request: HttpRequest, selected: list[str], back: str, act, *, change_message: str, summary: str
    ) -> HttpResponse:
        """Apply ``act`` to each selected connection, log what was done, report what was gone."""

        async def apply() -> tuple[list[Connection], list[str]]:
            done, gone = [], []
            for connection_id in selected:
                try:
                    done.append(await act(connection_id=connection_id))
                except ConnectionGone:
                    gone.append(connection_id)
            return done, gone

        try:
            done, gone = async_to_sync(apply)()
        except StoreError as error:
            messages.error(request, f"The connection registry did not answer: {error}")
            return HttpResponseRedirect(back)
        if done:
            LogEntry.objects.log_actions(
                user_id=request.user.pk,
                queryset=[LiveConnection(connection_id=c.connection_id, room=c.room, name=c.name) for c in done],
                action_flag=CHANGE,
                change_message=change_message,
            )
            for connection in done:
                logger.info(
                    "operator action: %s",
                    change_message,
                    extra={"connection_id": connection.connection_id, "user": request.user.get_username()},
                )
            self.message_user(request, f"{summary} {len(done)} connection(s).", messages.SUCCESS)
        if gone:
            self.message_user(request, f"Not live any more, nothing done: {', '.join(gone)}.", messages.WARNING)
        return HttpResponseRedirect(back)


admin.site.register(ModeratedRoom, ModeratedRoomAdmin)
