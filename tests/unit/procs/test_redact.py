"""The redaction filter: registered secrets and secret-named fields never reach a log line."""

from __future__ import annotations

import io
import logging

import pytest

from procs._redact import MASK, RedactingFilter, redact, register_secret

PLANTED = "planted-secret-7f3a9c"


@pytest.fixture
def logger():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    lg = logging.getLogger(f"test.redact.{id(stream)}")
    lg.addHandler(handler)
    lg.propagate = False
    lg.setLevel(logging.INFO)
    yield lg, stream
    lg.removeHandler(handler)


def test_redact_registered_secret_in_args_and_traceback_is_masked(logger):
    lg, stream = logger
    register_secret(PLANTED)

    lg.info("login with %s failed", PLANTED)
    try:
        raise ValueError(f"bad signature for {PLANTED}")
    except ValueError:
        lg.exception("request failed")

    text = stream.getvalue()
    assert PLANTED not in text
    assert text.count(MASK) == 2
    assert "ValueError" in text  # the traceback itself survives


@pytest.mark.parametrize(
    "line",
    [
        "headers api-key=abc123secret sign=deadbeef00",
        '{"secret": "unregistered-xyz", "apiKey": "k-123456"}',
        "passphrase: hunter2hunter2",
    ],
)
def test_redact_secret_named_fields_are_masked_even_unregistered(line):
    out = redact(line)

    for value in ("abc123secret", "deadbeef00", "unregistered-xyz", "k-123456", "hunter2hunter2"):
        assert value not in out
    assert MASK in out


def test_redact_short_values_are_not_registered():
    register_secret("abc")

    assert redact("abc def") == "abc def"
