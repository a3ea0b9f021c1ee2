"""Routes, the envelope and input validation (docs/contract.md)."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from dirty_equals import IsStr

from relay.envelope import body
from relay.errors import RelayError, warning
from relay.version import VERSION

from .conftest import API


def invalid(detail: str) -> dict:
    return {"errors": [{
        "type": "fatal", "code": "invalid argument",
        "message": f"Invalid JSON payload received. {detail}",
    }]}


def test_version(client) -> None:
    response = client.post("/version")
    assert (response.status_code, response.json) == (200, {"version": VERSION})


def test_index_answers_a_person(client) -> None:
    doc = client.get("/").json
    assert doc["version"] == VERSION
    assert "POST /observe/observables" in doc["routes"]
    assert "README" in doc["docs"]


def test_readiness_needs_nothing_outside_the_process(client, mocked) -> None:
    assert client.get("/ready").json == {"data": "ready"}
    assert len(mocked.calls) == 0


def test_watchdog(client) -> None:
    assert client.get("/watchdog", headers={"Health-Check": "abc"}).json == {
        "data": "abc"
    }
    assert client.get("/watchdog").json == {"errors": [{
        "type": "fatal", "code": "health check failed",
        "message": "Invalid Health Check",
    }]}


@pytest.mark.parametrize(("method", "path", "status", "reason"), [
    ("get", "/nowhere", 404, "NotFound"),
    ("post", "/respond/observables", 404, "NotFound"),
    ("get", "/version", 405, "MethodNotAllowed"),
    ("get", "/observe/observables", 405, "MethodNotAllowed"),
    ("post", "/watchdog", 405, "MethodNotAllowed"),
])
def test_routing_errors_are_json(client, method, path, status, reason) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response.json == {
        "code": status, "message": IsStr(min_length=10), "reason": reason,
    }


@pytest.mark.parametrize(("method", "path", "allow"), [
    ("get", "/version", {"POST"}),
    ("put", "/observe/observables", {"POST"}),
    ("post", "/watchdog", {"GET", "HEAD", "OPTIONS"}),
])
def test_405_names_the_allowed_methods(client, method, path, allow) -> None:
    response = getattr(client, method)(path)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= allow
    assert response.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("size", [2_000_000, 1_048_577])
def test_chunked_body_too_large(client, size) -> None:
    response = client.post("/observe/observables",
                           input_stream=io.BytesIO(b"[" + b" " * size + b"]"),
                           headers={"Transfer-Encoding": "chunked"},
                           content_type="application/json")
    assert response.status_code == 413
    assert response.json["reason"] == "RequestEntityTooLarge"


def test_chunked_body_within_the_cap_is_read(client) -> None:
    body = json.dumps([{"type": "url", "value": "https://example.com/"}]).encode()
    response = client.post("/observe/observables",
                           input_stream=io.BytesIO(body),
                           headers={"Transfer-Encoding": "chunked"},
                           content_type="application/json")
    assert response.json == {"data": {}}


def test_body_too_large(client) -> None:
    big = json.dumps([{"type": "email", "value": "x" * 2_000_000}])
    response = client.post("/observe/observables", data=big,
                           content_type="application/json")
    assert response.status_code == 413
    assert response.json["reason"] == "RequestEntityTooLarge"


@pytest.mark.parametrize(("payload", "detail"), [
    ("not json", "The body is not a JSON list."),
    ("", "The body is not a JSON list."),
    ("null", "The body is not a JSON list."),
    ('{"type": "email"}', '{"_schema": ["Invalid input type."]}'),
    ("[1]", '{"0": {"_schema": ["Invalid input type."]}}'),
    ('[{"type": "email"}]',
     '{"0": {"value": ["Missing data for required field."]}}'),
    ('[{"type": "email", "value": ""}]',
     '{"0": {"value": ["Shorter than minimum length 1."]}}'),
    ('[{"type": "email", "value": 5}]', '{"0": {"value": ["Not a valid string."]}}'),
    ('[{"type": null, "value": "a@b.co"}]',
     '{"0": {"type": ["Field may not be null."]}}'),
])
def test_malformed_observables(client, mocked, payload, detail) -> None:
    response = client.post("/observe/observables", data=payload,
                           content_type="application/json")
    assert response.json == invalid(detail)
    assert len(mocked.calls) == 0


def test_nothing_supported_needs_no_token(client, mocked) -> None:
    response = client.post("/observe/observables", json=[
        {"type": "url", "value": "https://example.com/"},
        {"type": "sha256", "value": "ab" * 32, "extra": True},
    ])
    assert response.json == {"data": {}}
    assert client.post("/observe/observables", json=[]).json == {"data": {}}
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("value", [
    "no-at-sign", "two@@example.com", "a@b", "a b@example.com",
    "a@exa mple.com", "a@example.com\n", "a\x00@example.com",
    "x" * 300 + "@example.com", "a@-example.com", "a@example.c0m",
])
def test_implausible_emails_are_not_sent(client, mocked, value) -> None:
    response = client.post("/observe/observables",
                           json=[{"type": "email", "value": value}])
    errors = response.json["errors"]
    assert [(e["type"], e["code"]) for e in errors] == [
        ("warning", "invalid argument")
    ]
    assert "is not a valid email address" in errors[0]["message"]
    assert "data" not in response.json
    assert len(mocked.calls) == 0


@pytest.mark.parametrize("value", [
    "jane@example.com", "J.Doe+tag@Sub.Example.CO.UK", "o'brien@example.ie",
    "a/b?c#d%e@example.com", "пользователь@пример.рф", "x@example.xn--p1ai",
])
def test_plausible_emails_are_looked_up(client, mocked, auth, value) -> None:
    from urllib.parse import quote
    mocked.get("http://spycloud.test/enterprise-v2/breach/data/emails/"
               + quote(value.lower(), safe="@"),
               json={"cursor": "", "hits": 0, "results": []})
    response = client.post("/observe/observables", headers=auth,
                           json=[{"type": "email", "value": value}])
    assert response.json == {"data": {}}


def test_unexpected_exception_becomes_envelope(app, caplog) -> None:
    def boom() -> None:
        raise KeyError("a bug")

    # A view of the app that fails as a bug would: the handler is the app's.
    app.add_url_rule("/boom", "boom", boom, methods=["POST"])
    response = app.test_client().post("/boom")
    assert "KeyError: 'a bug'" in caplog.text
    assert response.status_code == 200
    assert response.json == {"errors": [{
        "type": "fatal", "code": "unknown",
        "message": "An unexpected error occurred.",
    }]}


def test_unexpected_exception_in_one_email_keeps_the_others(
        app, client, mocked, auth, monkeypatch) -> None:
    spycloud = app.extensions["relay"].spycloud
    real = spycloud.records

    def records(key: str, selector: str, value: str, *args: Any):
        if value == "a@example.com":
            raise ValueError("bug")
        return real(key, selector, value, *args)

    monkeypatch.setattr(spycloud, "records", records)
    mocked.get(API + "breach/data/emails/b@example.com", json={
        "cursor": "", "hits": 1, "results": [{
            "document_id": "d1", "source_id": 7,
            "spycloud_publish_date": "2020-01-01T00:00:00Z"}]})
    mocked.get(API + "breach/catalog/7", json={
        "cursor": "", "hits": 0, "results": []})
    response = client.post("/observe/observables", headers=auth, json=[
        {"type": "email", "value": "a@example.com"},
        {"type": "email", "value": "b@example.com"},
    ])
    assert response.json["errors"][0] == {
        "type": "fatal", "code": "unknown",
        "message": "An unexpected error occurred.",
    }
    assert response.json["data"]["sightings"]["count"] == 1


def test_envelope_rules() -> None:
    fatal = RelayError("boom")
    note = warning("not found", "gone")
    assert body() == {"data": {}}
    assert body({}, [fatal, fatal]) == {"errors": [fatal.json()]}
    assert body({"x": 1}, [note]) == {"data": {"x": 1}, "errors": [note.json()]}
