"""Each observable type's check, and the request's deduplication."""

from __future__ import annotations

import pytest

from relay.observables import (
    Observable, domain, email, ipv4, ipv6, supported, username,
)


@pytest.mark.parametrize(("value", "query"), [
    ("jdoe", "jdoe"), ("J.Doe_99", "J.Doe_99"), ("ünïcode", "ünïcode"),
    ("john doe", "john doe"), ("u" * 256, "u" * 256),
    ("", None), ("   ", None), ("u" * 257, None), ("a/b", None),
    ("../etc", None), ("tab\there", None), ("nul\x00", None),
    ("line\nbreak", None),
])
def test_username(value: str, query: str | None) -> None:
    assert username(value) == query


@pytest.mark.parametrize(("value", "query"), [
    ("203.0.113.5", "203.0.113.5"), (" 10.0.0.1 ", "10.0.0.1"),
    ("", None), ("203.0.113.0/24", None), ("203.0.113", None),
    ("256.1.1.1", None), ("2001:db8::5", None), ("1.2.3.4/../x", None),
    ("example.com", None), ("1" * 300, None),
    ("::ffff:203.0.113.5", "203.0.113.5"), ("::FFFF:cb00:7105", "203.0.113.5"),
    ("::ffff:203.0.113.5%eth0", None),
])
def test_ipv4(value: str, query: str | None) -> None:
    assert ipv4(value) == query


@pytest.mark.parametrize(("value", "query"), [
    ("2001:db8::5", "2001:db8::5"),
    ("2001:0DB8:0000:0000:0000:0000:0000:0005", "2001:db8::5"),
    ("::1", "::1"),
    ("::ffff:203.0.113.5", "203.0.113.5"), ("", None), ("2001:db8::/32", None),
    ("fe80::1%eth0", None), ("203.0.113.5", None), ("2001:db8::5/../a", None),
    ("2001:db8:::5", None), ("f" * 300, None),
])
def test_ipv6(value: str, query: str | None) -> None:
    assert ipv6(value) == query


@pytest.mark.parametrize(("value", "query"), [
    ("Jane.Doe@Example.com", "jane.doe@example.com"),
    ("", None), ("jane", None), ("a/b@", None), ("x" * 300 + "@a.com", None),
    ("jane\u200b@example.com", None), ("jane@exa\u200bmple.com", None),
    ("\u202emoc.elpmaxe@enaj", None), ("jane\u2066@example.com", None),
    ("jane\ufeff@example.com", None), ("jane\u00ad@example.com", None),
    ("jane@bücher.example", "jane@bücher.example"),
])
def test_email(value: str, query: str | None) -> None:
    assert email(value) == query


def test_supported_keeps_order_and_dedupes_per_type() -> None:
    query = supported([
        {"type": "email", "value": "Jane@Example.com"},
        {"type": "IPv6", "value": "2001:DB8::5"},
        {"type": "user", "value": "jdoe"},
        {"type": "email", "value": "jane@example.com"},
        {"type": "ipv6", "value": "2001:db8:0::5"},
        {"type": "user", "value": "JDoe"},
        {"type": "ip", "value": "203.0.113.0/24"},
        {"type": "domain", "value": "Example.COM."},
        {"type": "domain", "value": "example.com"},
        {"type": "sha256", "value": "ab" * 32},
    ], cap=10)
    assert query.observables == (
        Observable("email", "Jane@Example.com", "jane@example.com"),
        Observable("ipv6", "2001:DB8::5", "2001:db8::5"),
        Observable("user", "jdoe", "jdoe"),
        Observable("user", "JDoe", "JDoe"),
        Observable("domain", "Example.COM.", "example.com"),
    )
    assert [w.message for w in query.warnings] == [
        "'203.0.113.0/24' is not a valid IPv4 address; it was not looked up."
    ]


@pytest.mark.parametrize(("value", "query"), [
    ("corp.example", "corp.example"),
    ("Mail.Corp.Example", "mail.corp.example"),  # lower-cased
    ("corp.example.", "corp.example"),  # one trailing dot dropped
    ("a.b", "a.b"),  # labels of one character
    ("x1-y2.example", "x1-y2.example"),  # digits and inner hyphens
    (f"{'a' * 63}.example", f"{'a' * 63}.example"),
    (".".join(["a" * 62] * 4) + ".b", ".".join(["a" * 62] * 4) + ".b"),
    ("bücher.example", "xn--bcher-kva.example"),  # an IDN as punycode
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("localhost", None),  # one label
    ("corp.example..", None),  # two trailing dots
    (".corp.example", None), ("corp..example", None),  # an empty label
    ("-corp.example", None), ("corp-.example", None),  # end hyphens
    (f"{'a' * 64}.example", None),  # a label over 63
    (".".join(["a" * 62] * 4) + ".bc", None),  # 254 characters
    ("*.corp.example", None),  # a wildcard
    ("corp.example/login", None), ("https://corp.example", None),
    ("corp.example:443", None), ("corp example.com", None),
    (" corp.example", None), ("corp_mail.example", None),
    ("203.0.113.5", None),  # an address, not a name
    ("", None), (".", None),
])
def test_domain(value: str, query: str | None) -> None:
    assert domain(value) == query
