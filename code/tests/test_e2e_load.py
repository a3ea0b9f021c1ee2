"""500 requests from 32 clients while SpyCloud fails ~5 % of calls."""

from __future__ import annotations

import pytest

from devtools import loadcheck, synthetic
from devtools.stack import Stack

pytestmark = pytest.mark.e2e

KEY = "load-Key-7d41c9-not-for-logs"


def test_load_with_faults_loses_and_mixes_nothing(tmp_path) -> None:
    env = {"SPYCLOUD_RETRY_WAIT": "0.02", "SPYCLOUD_RETRY_WAIT_MAX": "0.2",
           "WEB_CONCURRENCY": "2", "RECORDS_CACHE_TTL": "0"}
    log_path = tmp_path / "relay.log"
    with log_path.open("w") as log, Stack(
        fault_rate=0.05, env=env, api_key=KEY, log=log
    ) as stack:
        report = loadcheck.run(stack, count=500, clients=32)
        faults = sum(v for k, v in stack.emulator.calls.items()
                     if k.startswith("fault"))
        calls = stack.emulator.calls["total"]
        jwks_fetches = stack.jwks.fetches
    print(report.summary(), f"faults {faults} of {calls} calls")
    assert report.problems == []
    assert report.clean + report.with_errors == 500
    assert 0.02 * calls < faults < 0.10 * calls  # the faults really happened
    assert report.clean >= 490  # retries absorb nearly all of them
    assert jwks_fetches <= 2  # one per worker for its lifetime
    log_text = log_path.read_text()
    assert KEY not in log_text and "Traceback" not in log_text


def test_the_check_finds_lost_and_mixed_sightings() -> None:
    email = "jane.doe@demo.test"
    records = synthetic.records(email)

    def sighting(value: str, doc: str) -> dict:
        return {"observables": [{"type": "email", "value": value}],
                "external_ids": [doc]}

    complete = {"data": {"sightings": {"docs": [
        sighting(email, r["document_id"]) for r in records]}}}
    assert loadcheck.check(complete, [email]) == ([], False)
    lost = {"data": {"sightings": {"docs": complete["data"]["sightings"][
        "docs"][1:]}}}
    assert loadcheck.check(lost, [email])[0]
    mixed = {"data": {"sightings": {"docs": [
        sighting("heavy@demo.test", "x")]}}}
    assert any("another request" in p
               for p in loadcheck.check(mixed, [email])[0])
    assert loadcheck.check("<html>", [email])[0]
    assert loadcheck.check({"data": {}, "junk": 1}, [email])[0]
