"""Logging, configured once where the process starts (`gunicorn.conf.py`
hands `config` to gunicorn): one format for the relay, gunicorn and
libraries, `text` or `json` (one object per line).

Log calls pass their fields as `extra={"fields": {...}}`: the text format
shows them as `name=value` after the message, the JSON format as keys.
No field ever holds an API key, a token, an observable or a password.
"""

from __future__ import annotations

import contextvars
import copy
import datetime as dt
import json
import logging
import re
from typing import Any

from stamina.instrumentation import RetryDetails

TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The endpoint and request id of the SpyCloud call a greenlet is making,
# for the retry hook (stamina calls it in that greenlet).
CALL: contextvars.ContextVar[tuple[str, str]] = contextvars.ContextVar("call")


# What a caller sends (a path, a header) may reach a message or a field:
# each is cut to this many characters, and the text format escapes control
# characters, so a caller can neither forge a line nor flood the log.
MAX_TEXT = 512
CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def clip(text: str) -> str:
    """Cut *text* to `MAX_TEXT` characters."""
    return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + "…"


def escape(text: str) -> str:
    """Cut *text* and write its control characters as escapes (`\\n`)."""
    return CONTROL.sub(
        lambda m: m.group().encode("unicode_escape").decode("ascii"),
        clip(text))


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message name=value ...`, one line per event
    (a traceback, the relay's own, follows on lines of its own)."""

    def __init__(self) -> None:
        super().__init__(TEXT)

    def format(self, record: logging.LogRecord) -> str:
        shown = copy.copy(record)
        shown.msg, shown.args = escape(record.getMessage()), None
        line = super().format(shown)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{k}={escape(str(v))}"
                                   for k, v in fields.items())
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, fields."""

    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(
                record.created, dt.timezone.utc).isoformat(
                    timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": clip(record.getMessage()),
        }
        doc.update({k: clip(v) if isinstance(v, str) else v
                    for k, v in (getattr(record, "fields", None) or {}).items()})
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def config(level: str, form: str) -> dict[str, Any]:
    """Return the `logging.config.dictConfig` of the whole process."""
    formatter = JsonFormatter if form == "json" else TextFormatter
    handler = {"class": "logging.StreamHandler", "formatter": "relay",
               "stream": "ext://sys.stdout"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"relay": {"()": formatter}},
        "handlers": {"console": handler, "error_console": handler},
        "root": {"level": level, "handlers": ["console"]},
        "loggers": {
            # gunicorn's own logger, in the same format on the same stream
            # (its access lines: none, gunicorn.conf.py).
            "gunicorn.error": {"level": level, "handlers": ["console"],
                               "propagate": False, "qualname": "gunicorn.error"},
        },
    }


def log_retry(details: RetryDetails) -> None:
    """stamina's on-retry hook (`create_app` installs it): one INFO line
    per retry of a SpyCloud call, naming the endpoint and request the
    retrying greenlet is serving."""
    endpoint, request_id = CALL.get(("-", "-"))
    cause = details.caused_by
    logging.getLogger("relay.transport").info(
        "SpyCloud call retried", extra={"fields": {
            "kind": getattr(cause, "kind", type(cause).__name__),
            "status": getattr(cause, "status", None) or "-",
            "endpoint": endpoint, "attempt": details.retry_num,
            "wait": f"{details.wait_for:.2f}", "request_id": request_id}})
