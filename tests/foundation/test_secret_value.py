"""A Secret is not a str: masked everywhere, revealed only by an explicit call."""

from __future__ import annotations

import json
import logging
import pickle

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rotator.errors import BadInputError
from rotator.secret import MASK, MaskingJSONEncoder, Secret, read_secret_input


@given(st.text(min_size=1))
def test_value_never_shows(value: str) -> None:
    s = Secret(value)
    assert s.reveal() == value
    for shown in (
        repr(s),
        str(s),
        f"{s}",
        f"{s!r}",
        "%s" % (s,),  # noqa: UP031 - the %-operator path must mask too
        json.dumps({"v": s}, cls=MaskingJSONEncoder),
    ):
        assert MASK in shown
        if len(value) > 3 and value not in MASK and value not in "Secret('')":
            assert value not in shown


def test_not_a_str_and_not_picklable() -> None:
    s = Secret("sk_live_abc")
    assert not isinstance(s, str)
    with pytest.raises(TypeError):
        pickle.dumps(s)
    with pytest.raises(TypeError):
        json.dumps({"v": s})


def test_logging_shows_the_mask(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("x").debug("value %s %r", Secret("canary-123"), Secret("canary-123"))
    assert "canary-123" not in caplog.text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("\n", "empty"),
        ("   ", "whitespace"),
        ("abc\ndef", "several lines"),
        (" abc", "spaces"),
    ],
)
def test_supplied_values_are_refused_when_malformed(text: str, message: str) -> None:
    with pytest.raises(BadInputError, match=message):
        read_secret_input(text)


def test_one_trailing_newline_is_dropped() -> None:
    assert read_secret_input("re_123\n").reveal() == "re_123"
