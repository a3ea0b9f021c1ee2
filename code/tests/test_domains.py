"""Domains, HTTP in and out against a mocked SpyCloud: the call and its
filters, the page cap and its warning, what each sighting targets."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import responses

from relay.factory import create_app

from .conftest import API
from .helpers import page

DOMAINS = API + "breach/data/domains/"
CATALOG = API + "breach/catalog/"


def rec(n: int, email: str | None = None, severity: int = 20,
        day: int = 1) -> dict[str, Any]:
    raw = {"document_id": f"doc-{n}", "source_id": 7, "severity": severity,
           "spycloud_publish_date": f"2026-01-{day:02d}T00:00:00Z",
           "email": email, "domain": "corp.example"}
    return {k: v for k, v in raw.items() if v is not None}


def observe(client, auth, *values: str) -> dict:
    response = client.post("/observe/observables", headers=auth, json=[
        {"type": "domain", "value": v} for v in values])
    assert response.status_code == 200
    return response.json


def serve(mocked, pages: list[list[dict]], hits: int | None = None
          ) -> list[dict[str, list[str]]]:
    """Answer a domain's pages in order (a cursor per page but the last)
    and its catalog; return the query of every records call."""
    asked: list[dict[str, list[str]]] = []

    def answer(request):
        query = parse_qs(urlsplit(request.url).query)
        asked.append(query)
        n = int(query["cursor"][0][1:]) if "cursor" in query else 0
        body = page(pages[n], f"p{n + 1}" if n + 1 < len(pages) else "")
        body["hits"] = hits if hits is not None else sum(map(len, pages))
        return 200, {}, json.dumps(body)

    mocked.add_callback(responses.GET, re.compile(DOMAINS + ".*"), answer)
    mocked.add(responses.GET, re.compile(CATALOG + ".*"),
               json=page([{"id": 7, "title": "Seven"}]))
    return asked


def test_a_domain_is_looked_up_normalised_with_the_filters(
        settings, mocked, make_token, jwks) -> None:
    app = create_app(settings, now=lambda: dt.datetime(
        2026, 1, 31, 12, tzinfo=dt.timezone.utc))
    asked = serve(mocked, [[rec(1, "a@corp.example", 26),
                            rec(2, "b@corp.example", 20)]])
    token = make_token(MIN_SEVERITY="26", LOOKBACK_DAYS=30)
    body = observe(app.test_client(), {"Authorization": f"Bearer {token}"},
                   "Corp.Example.")
    assert [c.request.url.split("?")[0] for c in mocked.calls
            if "/domains/" in c.request.url] == [DOMAINS + "corp.example"]
    assert asked == [{"since": ["2026-01-01"]}]
    docs = body["data"]["sightings"]["docs"]
    assert [d["external_ids"][0] for d in docs] == ["doc-1"]  # severity 26
    assert docs[0]["observables"] == [
        {"type": "domain", "value": "Corp.Example."}]


def test_a_domains_sightings_name_its_employees(client, mocked, auth) -> None:
    serve(mocked, [[rec(1, "a@corp.example"), rec(2)]])
    body = observe(client, auth, "corp.example")
    docs = body["data"]["sightings"]["docs"]
    domain = {"type": "domain", "value": "corp.example"}
    assert {d["external_ids"][0]: d["targets"][0]["observables"]
            for d in docs} == {
        "doc-1": [domain, {"type": "email", "value": "a@corp.example"}],
        "doc-2": [domain]}
    assert all(d["targets"][0]["type"] == "domain" for d in docs)
    assert "errors" not in body


def test_a_domain_reads_at_most_its_pages_and_says_how_many_exist(
        settings, mocked, auth) -> None:
    app = create_app(dataclasses.replace(settings, domain_max_pages=3))
    pages = [[rec(n * 10 + i, f"u{n}{i}@corp.example") for i in range(4)]
             for n in range(6)]
    asked = serve(mocked, pages, hits=1_234_567)
    body = observe(app.test_client(), auth, "corp.example")
    assert len(asked) == 3  # the domain's cap, not SPYCLOUD_MAX_PAGES
    assert body["data"]["sightings"]["count"] == 12
    assert body["errors"] == [{
        "type": "warning", "code": "too many results",
        "message": "SpyCloud holds 1,234,567 records for corp.example; the"
        " relay reads at most 3 pages, and this answer covers the newest 12"
        " of them."}]


def test_an_email_keeps_the_general_page_cap(settings, mocked, auth) -> None:
    app = create_app(dataclasses.replace(settings, max_pages=2,
                                         domain_max_pages=5))

    def answer(request):
        n = len([c for c in mocked.calls if "/emails/" in c.request.url])
        return 200, {}, json.dumps({"cursor": f"c{n}", "hits": 9000,
                                    "results": [rec(n, "a@corp.example")]})

    mocked.add_callback(responses.GET,
                        re.compile(API + "breach/data/emails/.*"), answer)
    mocked.add(responses.GET, re.compile(CATALOG + ".*"),
               json=page([{"id": 7, "title": "Seven"}]))
    body = app.test_client().post("/observe/observables", headers=auth, json=[
        {"type": "email", "value": "a@corp.example"}]).json
    assert len([c for c in mocked.calls if "/emails/" in c.request.url]) == 2
    assert body["errors"][0]["message"] == (
        "SpyCloud holds 9,000 records for a@corp.example; the relay reads"
        " at most 2 pages, and this answer covers the newest 2 of them.")


@pytest.mark.parametrize("hits", [None, "many", -1, 3])
def test_without_a_usable_total_the_warning_says_more_exist(
        settings, mocked, auth, hits) -> None:
    app = create_app(dataclasses.replace(settings, domain_max_pages=1))
    mocked.add(responses.GET, re.compile(DOMAINS + ".*"), json={
        "cursor": "more", "results": [rec(1), rec(2), rec(3), rec(4)],
        **({} if hits is None else {"hits": hits})})
    mocked.add(responses.GET, re.compile(CATALOG + ".*"),
               json=page([{"id": 7, "title": "Seven"}]))
    body = observe(app.test_client(), auth, "corp.example")
    assert body["errors"][0]["message"] == (
        "SpyCloud holds more records for corp.example than the relay reads"
        " (1 pages); older records were not read.")


@pytest.mark.parametrize("value", [
    "*.corp.example", "corp.example/login", "corp.example:443", "localhost",
    "-corp.example"])
def test_an_invalid_domain_is_not_looked_up(client, mocked, value) -> None:
    body = observe(client, {}, value)  # nothing to look up: no token needed
    assert body == {"errors": [{
        "type": "warning", "code": "invalid argument",
        "message": f"{value!r} is not a valid domain; it was not looked up."}]}
    assert not [c for c in mocked.calls if c.request.url.startswith(API)]


def test_refer_offers_a_search_for_a_domain(client, mocked, auth) -> None:
    serve(mocked, [[rec(1, "a@corp.example")]])
    links = client.post("/refer/observables", headers=auth, json=[
        {"type": "domain", "value": "corp.example"}]).json["data"]
    assert links[0]["title"] == "Search SpyCloud for this domain"
    assert links[0]["id"] == "ref-spycloud-search-domain-corp.example"
