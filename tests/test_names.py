"""Display names read as what they are, and a guest's never passes for a registered user's."""

import pytest
from django.contrib.auth import get_user_model

from chat.names import clean_name, guest_display_name, skeleton

WOMAN_TECHNOLOGIST = "\U0001f469\u200d\U0001f4bb"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("  Ann  ", "Ann"),
        ("A\x00n\x1bn", "Ann"),
        ("x" * 40, "x" * 32),
        ("An\u200bn", "Ann"),  # zero-width space
        ("\ufeffAnn", "Ann"),  # byte-order mark
        ("\u202eAnn\u202c", "Ann"),  # right-to-left override
        ("\u2066Ann\u2069", "Ann"),  # bidi isolates
        ("\uff21nn", "Ann"),  # fullwidth A, by NFKC
        (f"Ann {WOMAN_TECHNOLOGIST}", f"Ann {WOMAN_TECHNOLOGIST}"),  # the joiner between two emoji stays
        ("Ann \U0001f44b\U0001f3fd", "Ann \U0001f44b\U0001f3fd"),  # a skin tone stays
        ("A\u200dnn", "Ann"),  # a joiner between letters does not
    ],
)
def test_display_names_are_cleaned(raw, expected):
    assert clean_name(raw) == expected


@pytest.mark.parametrize("raw", [None, "", "   ", "\x00\x07", "\u200b\u200b"])
def test_without_a_usable_name_a_guest_name_is_picked(raw):
    name = clean_name(raw)
    assert name.startswith("guest-") and len(name) == 10


@pytest.mark.parametrize("lookalike", ["\u0430nn", "\uff21nn", "ANN", "ann", "Ann\u200b"])
def test_lookalikes_share_a_skeleton(lookalike):
    assert skeleton(lookalike) == skeleton("Ann")


def test_different_names_have_different_skeletons():
    assert skeleton("Ann") != skeleton("Anne") and skeleton("Bob") != skeleton("Rob")


@pytest.mark.django_db
@pytest.mark.parametrize("asked", ["Ann", "\u0430nn", "\uff21nn", "An\u200bn", "aNN"])
def test_a_guest_cannot_pass_for_a_registered_user_by_a_lookalike(asked):
    get_user_model().objects.create_user(username="Ann", password="pw-123456789")
    assert guest_display_name(asked) == f"{clean_name(asked)} (guest)"


@pytest.mark.django_db
def test_a_guest_keeps_a_name_nobody_registered_and_its_emoji():
    get_user_model().objects.create_user(username="Ann", password="pw-123456789")
    assert guest_display_name(f"Anna {WOMAN_TECHNOLOGIST}") == f"Anna {WOMAN_TECHNOLOGIST}"
