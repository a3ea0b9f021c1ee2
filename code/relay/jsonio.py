"""JSON in and out with orjson: large answers are the relay's hot path."""

from __future__ import annotations

from typing import Any

import orjson
from flask import Response
from flask.json.provider import JSONProvider


def loads(data: bytes | str) -> Any:
    """Parse JSON; raise ValueError (orjson.JSONDecodeError) if it is not."""
    return orjson.loads(data)


class OrjsonProvider(JSONProvider):
    """Flask's JSON provider on orjson, keeping the order of keys."""

    def dumps(self, obj: Any, **kwargs: Any) -> str:
        return orjson.dumps(obj).decode()

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return orjson.loads(s)

    def response(self, *args: Any, **kwargs: Any) -> Response:
        obj = self._prepare_response_obj(args, kwargs)
        return Response(orjson.dumps(obj), mimetype="application/json")
