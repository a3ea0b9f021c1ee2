"""The two log formats."""

from __future__ import annotations

import json
import logging

from relay import logs


def record(**fields) -> logging.LogRecord:
    made = logging.LogRecord("relay", logging.WARNING, __file__, 1,
                             "SpyCloud call %s", ("failed",), None)
    if fields:
        made.fields = fields
    return made


def test_text_shows_fields_after_the_message() -> None:
    line = logs.TextFormatter().format(record(kind="timeout", attempts=3))
    assert line.endswith(" WARNING relay: SpyCloud call failed kind=timeout"
                         " attempts=3")
    assert logs.TextFormatter().format(record()).endswith(
        "relay: SpyCloud call failed")


def test_json_is_one_object_with_the_fields_as_keys() -> None:
    doc = json.loads(logs.JsonFormatter().format(record(status=500)))
    assert doc == {"time": doc["time"], "level": "WARNING", "logger": "relay",
                   "message": "SpyCloud call failed", "status": 500}
    assert doc["time"].endswith("Z")


def test_json_carries_a_traceback_in_one_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        import sys
        made = record()
        made.exc_info = sys.exc_info()
    line = logs.JsonFormatter().format(made)
    assert "\n" not in line
    assert "ValueError: boom" in json.loads(line)["exception"]


def test_one_configuration_for_the_relay_gunicorn_and_libraries() -> None:
    config = logs.config("DEBUG", "json")
    assert config["formatters"]["relay"]["()"] is logs.JsonFormatter
    assert config["root"] == {"level": "DEBUG", "handlers": ["console"]}
    assert config["loggers"]["gunicorn.error"]["handlers"] == ["console"]
    assert logs.config("INFO", "text")["formatters"]["relay"]["()"] \
        is logs.TextFormatter


def test_text_escapes_what_a_caller_sent_and_cuts_it() -> None:
    made = logging.LogRecord(
        "relay", logging.INFO, __file__, 1, "%s %s %s",
        ("POST", "/\n2026-01-01 00:00:00,000 INFO relay: POST /health 200"
         " FORGED\r\x1b[31m", 200), None)
    made.fields = {"request_id": "a\nb", "path": "/" + "x" * 8000}
    line = logs.TextFormatter().format(made)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line
    assert "POST /\\n2026-01-01" in line and "FORGED\\r\\x1b[31m 200" in line
    assert "request_id=a\\nb" in line
    assert len(line) < 1200  # the 8,001-character path is cut
    assert line.endswith("path=/" + "x" * (logs.MAX_TEXT - 1) + "…")


def test_json_cuts_long_fields() -> None:
    doc = json.loads(logs.JsonFormatter().format(record(path="/" + "x" * 9000)))
    assert len(doc["path"]) == logs.MAX_TEXT + 1
