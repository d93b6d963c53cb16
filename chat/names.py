"""
Display names: what a guest asks for, cleaned so that it reads as what it
is, and never passing for a registered user's name.

A name loses control characters and format characters (Unicode category
Cf: zero-width spaces, bidi overrides, byte-order marks), except a
zero-width joiner (U+200D) between two emoji, which makes one picture of
them (woman, joiner, laptop: a woman technologist); it is NFKC-normalised
(so a fullwidth A is a plain A). Whether it passes for a registered
username is decided on UTS #39 confusable skeletons of the case-folded
forms (ICU's spoof checker, with Unicode's confusables data), so "Ann"
spelled with a Cyrillic a is still "Ann".
"""

import logging
import secrets
import threading
import time
import unicodedata

import icu
from channels.db import database_sync_to_async
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import DatabaseError
from django.db.models import Count, Max
from django.db.models.signals import post_delete, post_save

from .database import report_names_unchecked
from .protocol import GUEST_PREFIX, NAME_MAX_LENGTH

logger = logging.getLogger(__name__)

GUEST_SUFFIX = " (guest)"
ZERO_WIDTH_JOINER = "\u200d"
# Seconds a process trusts its set of registered names while the user table's size and highest key stay the same.
REGISTERED_TTL = 60.0
# Seconds a connect trusts that answer without asking the database again (a user registered
# through another process counts from then on): a storm of guests asks once a second, not once each.
FINGERPRINT_SECONDS = 1.0


def guest_name() -> str:
    return GUEST_PREFIX + "".join(secrets.choice("abcdefghjkmnpqrstuvwxyz23456789") for _ in range(4))


def _is_emoji(ch: str) -> bool:
    # Pictographs are "So"; skin tones "Sk"; keycaps and variation selectors sit between as marks.
    return unicodedata.category(ch) in {"So", "Sk"}


def _visible(text: str) -> str:
    """``text`` without control and format characters, keeping a joiner between two emoji."""
    kept = []
    for index, ch in enumerate(text):
        category = unicodedata.category(ch)
        if category == "Cc":
            continue
        if category == "Cf":
            if ch != ZERO_WIDTH_JOINER or not kept:
                continue
            before = next((c for c in reversed(kept) if not unicodedata.category(c).startswith("M")), "")
            after = text[index + 1 : index + 2]
            if not (_is_emoji(before) and after and _is_emoji(after)):
                continue
        kept.append(ch)
    return "".join(kept)


def clean_name(raw: str | None) -> str:
    """
    A display name: normalised (NFKC), control and format characters
    removed, trimmed, at most 32 characters; a ``guest-xxxx`` name when
    nothing usable is left.
    """
    text = _visible(unicodedata.normalize("NFKC", raw or "")).strip()
    text = text[:NAME_MAX_LENGTH].strip()
    return text or guest_name()


_checker = threading.local()  # ICU's spoof checker is not documented as thread-safe


def skeleton(name: str) -> str:
    """The UTS #39 confusable skeleton of the case-folded name: two names that look alike share it."""
    checker = getattr(_checker, "spoof", None)
    if checker is None:
        checker = _checker.spoof = icu.SpoofChecker()
    return checker.getSkeleton(0, unicodedata.normalize("NFKC", name).casefold()).casefold()


class RegisteredNames:
    """
    Skeletons of every registered username. Each check asks the database
    one cheap question (how many users, and the highest key) and reads the
    usernames again only when that answer changed, when a user was saved or
    deleted in this process, or after ``REGISTERED_TTL`` seconds (a rename
    elsewhere). Runs in a thread (the ORM), never on the event loop.
    """

    def __init__(self) -> None:
        self._skeletons: frozenset[str] = frozenset()
        self._fingerprint: tuple | None = None
        self._read_at = float("-inf")
        self._asked_at = float("-inf")  # when the database last confirmed the fingerprint
        self._lock = threading.Lock()

    def invalidate(self, **_: object) -> None:
        self._fingerprint = None

    def recent(self) -> frozenset[str] | None:
        """The skeletons, if the database confirmed them less than ``FINGERPRINT_SECONDS`` ago; None: ask it."""
        if self._fingerprint is None or time.monotonic() - self._asked_at >= FINGERPRINT_SECONDS:
            return None
        return self._skeletons

    def taken(self, name: str) -> bool:
        """Whether ``name`` looks like a registered username; False (logged once) without a database."""
        try:
            return skeleton(name) in self._current()
        except DatabaseError as error:
            report_names_unchecked(error)
            return False

    def _current(self) -> frozenset[str]:
        model = get_user_model()
        summary = model.objects.aggregate(count=Count("pk"), last=Max("pk"))
        fingerprint = (summary["count"], summary["last"])
        asked_at = time.monotonic()
        with self._lock:
            if fingerprint != self._fingerprint or asked_at - self._read_at >= REGISTERED_TTL:
                usernames = model.objects.values_list(model.USERNAME_FIELD, flat=True).iterator()
                self._skeletons = frozenset(skeleton(username) for username in usernames)
                self._fingerprint, self._read_at = fingerprint, time.monotonic()
            self._asked_at = asked_at
            return self._skeletons


registered_names = RegisteredNames()
post_save.connect(registered_names.invalidate, sender=settings.AUTH_USER_MODEL, dispatch_uid="chat-names")
post_delete.connect(registered_names.invalidate, sender=settings.AUTH_USER_MODEL, dispatch_uid="chat-names")


def guest_display_name(requested: str | None, registered: frozenset[str] | None = None) -> str:
    """
    The name a guest chats under: ``requested``, cleaned; with `` (guest)``
    added when it passes for a registered user. Blocking (the ORM) unless
    ``registered`` (the skeletons of the registered names) is given: call
    it through ``database_sync_to_async``, or use ``guest_display_name_for``.
    """
    name = clean_name(requested)
    if requested is not None:
        taken = skeleton(name) in registered if registered is not None else registered_names.taken(name)
        if taken:
            name = f"{name[: NAME_MAX_LENGTH - len(GUEST_SUFFIX)]}{GUEST_SUFFIX}"
    return name


async def guest_display_name_for(requested: str | None) -> str:
    """``guest_display_name`` from the event loop: in a thread only when the database must be asked."""
    if requested is None:
        return clean_name(None)
    registered = registered_names.recent()
    if registered is None:
        return await database_sync_to_async(guest_display_name)(requested)
    return guest_display_name(requested, registered)
