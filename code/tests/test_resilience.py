"""Retries, Retry-After and the time budget, HTTP in and out."""

from __future__ import annotations

import pytest
import requests

from relay.budget import Budget
from relay.context import Context
from relay.errors import RetryableError, SpyCloudError
from relay.transport import RETRY_AFTER_MAX, retry_wait

from .conftest import API, API_KEY

EMAIL = "jane@example.com"
RECORDS = API + "breach/data/emails/" + EMAIL


def transient(retry_after: float | None = None) -> RetryableError:
    return RetryableError("x", retry_after=retry_after)


@pytest.mark.parametrize(("exc", "remaining", "decision"), [
    (transient(), 20.0, True),
    (transient(2.0), 20.0, 2.0),
    (transient(0.0), 20.0, 0.0),
    (transient(3600.0), 20.0, RETRY_AFTER_MAX),
    (transient(5.0), 4.0, False),
    (transient(), 1.0, False),
    (SpyCloudError("quota"), 20.0, False),
    (ValueError("bug"), 20.0, False),
])
def test_retry_wait(exc, remaining, decision) -> None:
    assert retry_wait(exc, remaining, wait_max=2.0) == decision


@pytest.mark.parametrize("header", [
    "0", "1.5", "Wed, 21 Oct 2026 07:28:00 GMT", "-3", "30",
])
def test_retry_after_header_forms_are_retried(client, mocked, auth,
                                              header) -> None:
    mocked.get(RECORDS, status=429, headers={"Retry-After": header})
    mocked.get(RECORDS, json={"cursor": "", "hits": 0, "results": []})
    assert client.post("/observe/observables", headers=auth, json=[
        {"type": "email", "value": EMAIL}
    ]).json == {"data": {}}


def test_quota_is_never_retried(client, mocked, auth) -> None:
    mocked.get(RECORDS, status=429,
               headers={"x-amzn-ErrorType": "LimitExceededException:x"})
    body = client.post("/observe/observables", headers=auth, json=[
        {"type": "email", "value": EMAIL}
    ]).json
    assert body["errors"][0]["code"] == "too many requests"
    assert len([c for c in mocked.calls if EMAIL in c.request.url]) == 1


def test_spent_budget_makes_no_call(app, mocked) -> None:
    spycloud = app.extensions["relay"].spycloud
    budget = Budget(5, clock=iter([0.0, 10.0, 10.0, 10.0, 10.0]).__next__)
    with pytest.raises(SpyCloudError) as raised:
        spycloud.records(Context(API_KEY, budget), "email", EMAIL, 100)
    assert raised.value.message == (
        "The relay's time budget of 5 s ran out before SpyCloud answered."
    )
    assert len(mocked.calls) == 0


def test_budget_expiry_mid_request_keeps_what_was_obtained(
        app, client, mocked, auth) -> None:
    mocked.get(API + "breach/data/emails/a@example.com",
               json={"cursor": "", "results": [{
                   "document_id": "d1", "source_id": 7,
                   "spycloud_publish_date": "2020-01-01T00:00:00Z"}]})
    mocked.get(API + "breach/data/emails/b@example.com",
               body=requests.exceptions.ReadTimeout())
    mocked.get(API + "breach/catalog/7", body=requests.exceptions.ReadTimeout())
    body = client.post("/observe/observables", headers=auth, json=[
        {"type": "email", "value": "a@example.com"},
        {"type": "email", "value": "b@example.com"},
    ]).json
    assert body["data"]["sightings"]["count"] == 1
    assert {e["message"] for e in body["errors"]} == {
        "SpyCloud did not answer in time."
    }
