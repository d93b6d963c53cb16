"""
The admin's "Rooms": the rooms with people in them now (the room directory,
through ``chat.services``) with each one's moderation, and a page per room
with its slow mode, lock and mutes, the bans (which hold in every room) and
its latest messages. Operators with the permission change them there through
``chat.moderation.actions``, as the ``@rooms`` API does; nothing is copied
into Django's database, and each action goes into the admin's log.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import async_to_sync
from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.http import urlencode

from .. import protocol, services
from ..exceptions import ProtocolError, StoreError, UnknownMessage
from ..models import MODERATE_MESSAGES, MODERATE_PEOPLE, MODERATE_ROOMS, LiveConnection, ModeratedRoom
from ..stores.base import RoomRules
from . import actions
from .api import LONGEST_SLOW_MODE
from .rules import until_words

logger = logging.getLogger(__name__)


# --- The forms of the actions ---------------------------------------------------


class SlowModeForm(forms.Form):
    seconds = forms.IntegerField(
        label="Seconds between one person's messages",
        min_value=0,
        max_value=LONGEST_SLOW_MODE,
        help_text="0 turns slow mode off.",
    )


class PersonForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=64,
        help_text="Their display name, in any case; it also covers whoever uses that name now.",
    )
    minutes = forms.IntegerField(label="Minutes", min_value=1, max_value=actions.LONGEST // 60)


class NameForm(forms.Form):
    # Exactly as the list shows it: a mute or ban is lifted by the name it was given.
    name = forms.CharField(max_length=64, strip=False)


class MessageForm(forms.Form):
    message_id = forms.CharField(max_length=64)

    def clean_message_id(self) -> str:
        value = self.cleaned_data["message_id"]
        if not protocol.valid_message_id(value):
            raise forms.ValidationError("That is not a message id.")
        return value


class Refused(Exception):
    """The action changed nothing; the message says why (shown to the operator as a warning)."""


@dataclass(frozen=True)
class Done:
    """What an action did: the model instance the log names, the log's words, and the operator's notice."""

    subject: models.Model
    change_message: str
    notice: str


def _ban_subject(name: str) -> LiveConnection:
    # As the @bans API logs it: a ban is of a person, not of a room.
    return LiveConnection(connection_id=f"ban:{name}", name=name)


async def _slow_mode(room: str, data: dict[str, Any]) -> Done:
    rules = await actions.room_rules_set(room=room, slow_mode=data["seconds"])
    words = f"Set slow mode to {rules.slow_mode} s and {'locked' if rules.locked else 'unlocked'}."
    state = f"slow mode {rules.slow_mode} s" if rules.slow_mode else "slow mode off"
    return Done(ModeratedRoom(name=room), words, f"#{room}: {state}.")


async def _lock(room: str, data: dict[str, Any]) -> Done:
    rules = await actions.room_rules_set(room=room, locked=True)
    words = f"Set slow mode to {rules.slow_mode} s and locked."
    return Done(ModeratedRoom(name=room), words, f"#{room} is locked: it can be read, but nobody can send.")


async def _unlock(room: str, data: dict[str, Any]) -> Done:
    rules = await actions.room_rules_set(room=room, locked=False)
    words = f"Set slow mode to {rules.slow_mode} s and unlocked."
    return Done(ModeratedRoom(name=room), words, f"#{room} is unlocked: everyone can send again.")


async def _mute(room: str, data: dict[str, Any]) -> Done:
    name, seconds = data["name"], data["minutes"] * 60
    until = await actions.person_mute(room=room, name=name, seconds=seconds)
    return Done(
        ModeratedRoom(name=room), f"Muted {name} for {seconds} s.", f"Muted {name} in #{room} {until_words(until)}."
    )


async def _unmute(room: str, data: dict[str, Any]) -> Done:
    name = data["name"]
    if not await actions.person_unmute(room=room, name=name):
        raise Refused(f"Nobody is muted as {name} in #{room}.")
    return Done(ModeratedRoom(name=room), f"Lifted the mute of {name}.", f"Lifted the mute of {name} in #{room}.")


async def _ban(room: str | None, data: dict[str, Any]) -> Done:
    name, seconds = data["name"], data["minutes"] * 60
    until, closed = await actions.person_ban(name=name, seconds=seconds)
    notice = f"Banned {name} from every room {until_words(until)}; {len(closed)} connection(s) closed."
    return Done(_ban_subject(name), f"Banned {name} for {seconds} s.", notice)


async def _unban(room: str | None, data: dict[str, Any]) -> Done:
    name = data["name"]
    if not await actions.person_unban(name=name):
        raise Refused(f"Nobody is banned as {name}.")
    return Done(_ban_subject(name), f"Lifted the ban of {name}.", f"Lifted the ban of {name}.")


async def _delete(room: str, data: dict[str, Any]) -> Done:
    message_id = data["message_id"]
    try:
        deleted = await actions.message_remove(room=room, message_id=message_id)
    except (UnknownMessage, ProtocolError):
        raise Refused(f"#{room} has no message {message_id}.") from None
    if deleted is None:
        raise Refused(f"Message {message_id} was deleted already.")
    return Done(ModeratedRoom(name=room), f"Deleted message {message_id}.", f"Deleted message {message_id} in #{room}.")


@dataclass(frozen=True)
class Action:
    permission: str
    form: type[forms.Form] | None
    run: Callable[[str | None, dict[str, Any]], Awaitable[Done]]
    # False for the bans: they hold in every room, so the Rooms page takes them too.
    of_a_room: bool = True


# The route table of the POST forms: ``action`` -> what it needs and does.
ACTIONS = {
    "slow_mode": Action(MODERATE_ROOMS, SlowModeForm, _slow_mode),
    "lock": Action(MODERATE_ROOMS, None, _lock),
    "unlock": Action(MODERATE_ROOMS, None, _unlock),
    "mute": Action(MODERATE_PEOPLE, PersonForm, _mute),
    "unmute": Action(MODERATE_PEOPLE, NameForm, _unmute),
    "ban": Action(MODERATE_PEOPLE, PersonForm, _ban, of_a_room=False),
    "unban": Action(MODERATE_PEOPLE, NameForm, _unban, of_a_room=False),
    "delete": Action(MODERATE_MESSAGES, MessageForm, _delete),
}


# --- Reading ------------------------------------------------------------------------


def _moment(iso: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(iso) if iso else None
    except ValueError:
        return None


def _people(entries: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Mutes or bans as ``rules_json`` gives them, with their ends as datetimes for the templates."""
    return [{"name": e["name"], "until": _moment(e["until"]), "until_iso": e["until"]} for e in entries]


def _state(room: str, rules: RoomRules) -> dict[str, Any]:
    shown = actions.rules_json(room, rules)
    return {"slow_mode": shown["slowModeSeconds"], "locked": shown["locked"], "mutes": _people(shown["mutes"])}


def _message_row(frame: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": frame["id"],
        "seq": frame.get("seq"),
        "name": frame.get("name", ""),
        "text": frame.get("message", ""),
        "deleted": frame.get("deleted") is True,
        "sent_at": _moment(frame.get("sentAt")),
        "edited_at": _moment(frame.get("editedAt")),
        "reactions": sorted((frame.get("reactions") or {}).items()),
    }


class ModeratedRoomAdmin(admin.ModelAdmin):
    # Nothing here is added, edited or deleted as a model: see the actions.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def get_urls(self):
        info = self.opts.app_label, self.opts.model_name
        wrap = self.admin_site.admin_view
        return [
            path("", wrap(self.changelist_view), name="{}_{}_changelist".format(*info)),
            path("<str:room>/", wrap(self.room_view), name="{}_{}_change".format(*info)),
        ]

    def url(self, room: str | None = None, **query: str) -> str:
        """The Rooms page (with ``query``), or one room's page."""
        name = "change" if room else "changelist"
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_{name}",
            args=[room] if room else [],
            current_app=self.admin_site.name,
        )
        query = {key: value for key, value in query.items() if value}
        return f"{url}?{urlencode(query)}" if query else url

    def context(self, request: HttpRequest, **extra) -> dict:
        user = request.user
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "has_view_permission": True,
            "can_moderate_rooms": user.has_perm(MODERATE_ROOMS),
            "can_moderate_people": user.has_perm(MODERATE_PEOPLE),
            "can_moderate_messages": user.has_perm(MODERATE_MESSAGES),
            "changelist_url": self.url(),
            **extra,
        }

    # --- The Rooms page --------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context=None) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        query = request.GET.get("q", "").strip()
        if request.method == "POST":
            return self.action_view(request, room=None, back=self.url(q=query))
        rows, bans = [], []
        try:
            rows, bans = async_to_sync(self.listing)(search=query)
        except StoreError as error:
            logger.error("admin rooms listing failed: %s", error)
            messages.error(request, f"The chat's store did not answer: {error}")
        context = self.context(
            request,
            title="Rooms",
            query=query,
            rows=rows,
            bans=bans,
            # A room with nobody in it is not listed, but it may still be locked or have mutes.
            open_url=self.url(query) if protocol.valid_room(query) else None,
            ban_form=PersonForm(auto_id="id_ban_%s"),
            **(extra_context or {}),
        )
        return TemplateResponse(request, "admin/chat/moderatedroom/change_list.html", context)

    async def listing(self, *, search: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """The rooms with people now (with their counts and moderation), and the bans in force."""
        rooms = await services.room_directory(search=search)
        rules, bans = await asyncio.gather(
            asyncio.gather(*(actions.room_rules(room=entry["room"]) for entry in rooms)), actions.bans_in_force()
        )
        rows = [
            {"room": entry["room"], "count": entry["count"], "url": self.url(entry["room"]), **_state(entry["room"], r)}
            for entry, r in zip(rooms, rules, strict=True)
        ]
        return rows, _people(bans)

    # --- One room ----------------------------------------------------------------

    def room_view(self, request: HttpRequest, room: str) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        if not protocol.valid_room(room):
            raise Http404("Rooms are named with 1 to 64 of A-Z a-z 0-9 _ -.")
        if request.method == "POST":
            return self.action_view(request, room=room, back=self.url(room))
        # Not "messages": that is the name of the notices (django.contrib.messages) in the templates.
        state: dict[str, Any] = {"count": None, "mutes": [], "bans": [], "recent": [], "more": False}
        try:
            state = async_to_sync(self.room_state)(room=room)
        except StoreError as error:
            logger.error("admin room page failed: %s", error, extra={"room": room})
            messages.error(request, f"The chat's store did not answer: {error}")
        context = self.context(
            request,
            title=f"Room #{room}",
            room=room,
            connections_url=reverse("admin:chat_liveconnection_changelist", current_app=self.admin_site.name)
            + f"?{urlencode({'room': room})}",
            slow_mode_form=SlowModeForm(initial={"seconds": state.get("slow_mode", 0)}),
            mute_form=PersonForm(auto_id="id_mute_%s"),
            ban_form=PersonForm(auto_id="id_ban_%s"),
            **state,
        )
        return TemplateResponse(request, "admin/chat/moderatedroom/detail.html", context)

    async def room_state(self, *, room: str) -> dict[str, Any]:
        """Its moderation, how many are in it, the bans, and its latest page of messages (newest first)."""
        rules, totals, bans, history = await asyncio.gather(
            actions.room_rules(room=room),
            services.room_totals(rooms=[room]),
            actions.bans_in_force(),
            services.history_page(room=room, before=10**18),
        )
        return {
            **_state(room, rules),
            "count": totals.get(room, 0),
            "bans": _people(bans),
            "recent": [_message_row(m) for m in reversed(history["messages"])],
            "more": history["more"],
        }

    # --- Actions ---------------------------------------------------------------------

    def action_view(self, request: HttpRequest, *, room: str | None, back: str) -> HttpResponse:
        """Run the POSTed ``action`` on ``room`` (None: the Rooms page), log it, say what happened, go ``back``."""
        action = ACTIONS.get(request.POST.get("action", ""))
        if action is None or (room is None and action.of_a_room):
            messages.error(request, "Choose an action to run.")
            return HttpResponseRedirect(back)
        if not request.user.has_perm(action.permission):
            raise PermissionDenied
        data: dict[str, Any] = {}
        if action.form is not None:
            form = action.form(request.POST)
            if not form.is_valid():
                problems = "; ".join(f"{field}: {' '.join(errors)}" for field, errors in form.errors.items())
                messages.error(request, f"Nothing done: {problems}")
                return HttpResponseRedirect(back)
            data = form.cleaned_data
        try:
            done = async_to_sync(action.run)(room, data)
        except Refused as refused:
            messages.warning(request, str(refused))
            return HttpResponseRedirect(back)
        except StoreError as error:
            logger.error("admin moderation failed: %s", error, extra={"room": room})
            messages.error(request, f"The chat's store did not answer, nothing done: {error}")
            return HttpResponseRedirect(back)
        LogEntry.objects.log_actions(
            user_id=request.user.pk, queryset=[done.subject], action_flag=CHANGE, change_message=done.change_message
        )
        logger.info(
            "operator action: %s", done.change_message, extra={"room": room, "user": request.user.get_username()}
        )
        messages.success(request, done.notice)
        return HttpResponseRedirect(back)
