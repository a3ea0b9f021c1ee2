"""A SpyCloud that never answers, against a relay with a 1.5 s budget."""

from __future__ import annotations

import time

import pytest
import requests

from devtools import synthetic

pytestmark = pytest.mark.e2e

BUDGET = 1.5  # RELAY_REQUEST_BUDGET of the hang_stack fixture


def observe(stack, *emails: str) -> tuple[dict, float]:
    token = stack.token()
    stack.tokens.append(token)
    stack.emails.update(emails)
    started = time.monotonic()
    answer = requests.post(
        stack.url + "/observe/observables", timeout=30,
        json=[{"type": "email", "value": e} for e in emails],
        headers={"Authorization": f"Bearer {token}"},
    )
    return answer.json(), time.monotonic() - started


@pytest.fixture(autouse=True)
def clean_hang_log(hang_stack):
    from .conftest import assert_log_clean

    yield
    assert_log_clean(hang_stack)


def test_hang_is_reported_within_the_budget(hang_stack) -> None:
    body, elapsed = observe(hang_stack, "fault-hang@demo.test")
    assert body == {"errors": [{"type": "fatal", "code": "unknown",
                                "message": "SpyCloud did not answer in time."}]}
    assert elapsed < BUDGET + 0.5


def test_a_hanging_email_costs_the_others_nothing(hang_stack) -> None:
    body, elapsed = observe(hang_stack, "fault-hang@demo.test",
                            "jane.doe@demo.test")
    assert elapsed < BUDGET + 0.5
    assert body["errors"] == [{"type": "fatal", "code": "unknown",
                               "message": "SpyCloud did not answer in time."}]
    data = body["data"]
    assert {k: v["count"] for k, v in data.items()} == {
        "sightings": 6, "indicators": 4, "relationships": 6,
    }
    sites = {r["document_id"]: synthetic.catalog(r["source_id"])["site"]
             for r in synthetic.records("jane.doe@demo.test")}
    for sighting in data["sightings"]["docs"]:
        assert sighting["source_uri"].startswith(
            "https://portal.spycloud.com/breach/catalog/")
        site = sites[sighting["external_ids"][0]]
        assert [r["related"]["value"] for r in sighting["relations"]
                if r["relation"] == "Leaked_From"] == (
            [] if site == "n/a" else [site])
    assert len({*sites.values()} - {"n/a"}) >= 2  # the check above has teeth
