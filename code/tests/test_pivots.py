"""Infostealer records → the infected machine and the stolen login, as
observables (relay/pivots.py), and how a Sighting carries them."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from relay import ctim, pivots
from relay.records import parse_record, parse_time

STEALER = {
    "user_hostname": "DESKTOP-7QK2M1F",
    "ip_addresses": ["203.0.113.7", "192.168.1.23", "127.0.0.1", "0.0.0.0",
                     "2001:db8:5::1"],
    "user_os": "Windows 10 Pro",
    "infected_time": "2026-05-07 18:55:00",
    "target_url": "https://vpn.corp.example/remote/login?token=s3cret#frag",
    "target_domain": "corp.example",
}


def found(**fields: Any) -> pivots.Pivots | None:
    return pivots.of({**STEALER, **fields}, 25, "m-1")


def kinds(result: pivots.Pivots | None) -> list[tuple[str, str]]:
    assert result is not None
    machine = result.machine.observables if result.machine else ()
    return [(o["type"], o["value"]) for o in (*machine, *result.targets)]


def test_a_stealer_record_gives_its_machine_and_login() -> None:
    result = found()
    assert kinds(result) == [
        ("hostname", "DESKTOP-7QK2M1F"), ("ip", "203.0.113.7"),
        ("ipv6", "2001:db8:5::1"),
        ("url", "https://vpn.corp.example/remote/login"),
        ("domain", "corp.example")]
    assert result.machine.os == "Windows 10 Pro"
    assert result.machine.infected == dt.datetime(
        2026, 5, 7, 18, 55, tzinfo=dt.timezone.utc)


@pytest.mark.parametrize(("severity", "machine", "expected"), [
    (25, None, True), (26, None, True), (30, None, True), (20, None, False),
    (None, None, False),
    (2, "m-1", True),
])
def test_only_infostealer_records_have_pivots(severity, machine,
                                              expected) -> None:
    assert (pivots.of(STEALER, severity, machine) is not None) is expected


@pytest.mark.parametrize("address", [
    "127.0.0.1", "0.0.0.0", "10.1.2.3", "172.16.0.9", "192.168.0.1",
    "100.64.0.1", "169.254.1.1", "224.0.0.1", "240.0.0.1", "::1", "::",
    "fe80::1", "fd00::5", "ff02::1", "not an ip", "203.0.113.0/24",
    "999.1.1.1", "", None, 17,
])
def test_addresses_that_lead_nowhere_are_left_out(address) -> None:
    assert pivots.ip(address) is None


# Each range's first and last address lead nowhere; the addresses just
# outside it do.
EDGES = [
    ("0.0.0.0", "0.255.255.255", None, "1.0.0.0"),
    ("10.0.0.0", "10.255.255.255", "9.255.255.255", "11.0.0.0"),
    ("100.64.0.0", "100.127.255.255", "100.63.255.255", "100.128.0.0"),
    ("127.0.0.0", "127.255.255.255", "126.255.255.255", "128.0.0.0"),
    ("169.254.0.0", "169.254.255.255", "169.253.255.255", "169.255.0.0"),
    ("172.16.0.0", "172.31.255.255", "172.15.255.255", "172.32.0.0"),
    ("192.168.0.0", "192.168.255.255", "192.167.255.255", "192.169.0.0"),
    ("224.0.0.0", "255.255.255.255", "223.255.255.255", None),
    ("::", "ff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", None, "100::"),
    ("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fbff::1", "fe00::"),
    ("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "fe7f::1", "fec0::"),
    ("ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "feff::1", None),
]


@pytest.mark.parametrize(("first", "last", "below", "above"), EDGES)
def test_the_edges_of_each_range_that_leads_nowhere(
        first, last, below, above) -> None:
    assert pivots.ip(first) is None and pivots.ip(last) is None
    for outside in (below, above):
        if outside is not None:
            assert pivots.ip(outside) is not None, outside


@pytest.mark.parametrize(("address", "kind", "shown"), [
    ("203.0.113.7", "ip", "203.0.113.7"), (" 8.8.4.4 ", "ip", "8.8.4.4"),
    ("2001:DB8:0:0::1", "ipv6", "2001:db8::1"),
    ("::ffff:198.51.100.3", "ip", "198.51.100.3"),
])
def test_public_addresses_are_kept_in_normal_form(address, kind,
                                                  shown) -> None:
    assert pivots.ip(address) == (kind, shown)


@pytest.mark.parametrize("name", [
    "n/a", "N/A", "unknown", "none", "", "  ", "-", "localhost", None, 42,
    "bad_name!", "-lead.example", "x" * 64, "a." * 130 + "b", "10.1.2.3",
])
def test_placeholder_and_invalid_hostnames_are_left_out(name) -> None:
    assert pivots.hostname(name) is None


def test_a_machine_without_a_usable_name_keeps_its_addresses() -> None:
    assert kinds(found(user_hostname="unknown", ip_addresses="203.0.113.8,"
                       " 10.0.0.2")) == [
        ("ip", "203.0.113.8"), ("url", "https://vpn.corp.example/remote/login"),
        ("domain", "corp.example")]


@pytest.mark.parametrize(("url", "kept"), [
    ("https://user:pass@login.corp.example:8443/a?b=c#d",
     "https://login.corp.example:8443/a"),
    ("http://203.0.113.9/admin", "http://203.0.113.9/admin"),
    ("https://login.corp.example", "https://login.corp.example/"),
    ("ftp://files.corp.example/", None), ("javascript:alert(1)", None),
    ("https://unknown/", None), ("https:///path", None), ("not a url", None),
    ("https://x.example/" + "a" * 1100, None), ("https://x.example:99999/", None),
    (None, None),
])
def test_urls_lose_what_may_be_secret(url, kept) -> None:
    assert pivots.target_url(url) == kept


def test_the_domain_comes_from_the_url_when_none_is_given() -> None:
    result = found(target_domain="n/a", target_url="https://sso.shop.example/x")
    assert kinds(result)[-2:] == [("url", "https://sso.shop.example/x"),
                                  ("domain", "sso.shop.example")]


def test_each_value_once_and_at_most_ten() -> None:
    many = ["203.0.113.1"] * 5 + [f"203.0.113.{n}" for n in range(1, 30)]
    result = found(ip_addresses=many)
    assert len(kinds(result)) == pivots.MAX_PIVOTS
    assert len(set(kinds(result))) == pivots.MAX_PIVOTS


def test_nothing_worth_investigating_gives_no_pivots() -> None:
    assert pivots.of({"user_hostname": "n/a", "ip_addresses": ["127.0.0.1"],
                      "password": "hunter22"}, 25, "m-1") is None


def test_an_unreadable_infection_time_is_none() -> None:
    assert found(infected_time="yesterday").machine.infected is None
    assert parse_time("2026-05-07T18:55:00Z") == dt.datetime(
        2026, 5, 7, 18, 55, tzinfo=dt.timezone.utc)


# --- the Sighting -----------------------------------------------------------

RECORD = {"document_id": "doc-1", "source_id": 7, "severity": 25,
          "spycloud_publish_date": "2026-05-08T00:00:00Z",
          "infected_machine_id": "a" * 40, "password": "hunter22",
          "session_cookie": "sid=abc", **STEALER}


def test_the_sighting_names_the_machine_and_the_login() -> None:
    doc = ctim.sighting(("email", "jane@corp.example"), parse_record(RECORD),
                        None, mask=True)
    jane = {"type": "email", "value": "jane@corp.example"}
    assert doc["targets"] == [
        {"type": "email", "observables": [jane], "observed_time": {
            "start_time": "2026-05-08T00:00:00.000000Z",
            "end_time": "2026-05-08T00:00:00.000000Z"}},
        {"type": "endpoint", "os": "Windows 10 Pro", "observables": [
            {"type": "hostname", "value": "DESKTOP-7QK2M1F"},
            {"type": "ip", "value": "203.0.113.7"},
            {"type": "ipv6", "value": "2001:db8:5::1"}],
         "observed_time": {"start_time": "2026-05-07T18:55:00.000000Z",
                           "end_time": "2026-05-07T18:55:00.000000Z"}},
    ]
    assert [(r["relation"], r["source"], r["related"])
            for r in doc["relations"]] == [
        ("Extracted_From", jane, {"type": "hostname",
                                  "value": "DESKTOP-7QK2M1F"}),
        ("Extracted_From", jane, {"type": "ip", "value": "203.0.113.7"}),
        ("Extracted_From", jane, {"type": "ipv6", "value": "2001:db8:5::1"}),
        ("Sent_To", jane, {"type": "url",
                           "value": "https://vpn.corp.example/remote/login"}),
        ("Sent_To", jane, {"type": "domain", "value": "corp.example"})]
    # Masking hides secrets, not the machine; no secret is an observable.
    related = str(doc["relations"]) + str(doc["targets"])
    assert "hunter22" not in related and "sid=abc" not in related
    assert "s3cret" not in related


def test_a_record_of_another_kind_keeps_todays_shape() -> None:
    plain = {**RECORD, "severity": 20}
    del plain["infected_machine_id"]
    doc = ctim.sighting(("email", "jane@corp.example"), parse_record(plain),
                        None)
    assert len(doc["targets"]) == 1 and doc["relations"] == []
