"""The synthetic SpyCloud data the emulator serves, and tests treat as
truth: deterministic records, catalogs and a watchlist (the HTTP server
and its faults are `emulator.py`).

Demo identifiers (any other address gets 0-8 records derived from its hash):

| email | what it shows |
|---|---|
| `nobody@demo.test` | no records |
| `jane.doe@demo.test` | 6 records over 4 breaches, one from an infostealer |
| `heavy@demo.test` | 150 records over 10 breaches |
| `huge@demo.test` | 2,500 records over 5 breaches, three pages |
| `combo@demo.test` | records from a combo list (severity always Medium) |
| `orphan@demo.test` | one breach whose catalog the API does not return |
| `nosite@demo.test` | a breach whose `site` is `n/a` |
| `lists@demo.test` | list-valued fields (`ip_addresses`, `social_links`) |
| `masked@demo.test` | fields the key is not entitled to: `********` |
| `severities@demo.test` | severities 2, 5, 20, 25, 26 and 30 |
| `infected@demo.test` | infostealer records: the machine and the logins it stole |
| `recent@demo.test` | 8 records 1 to 800 days old (try `LOOKBACK_DAYS`) |
| `cards@demo.test` | card fields (`cc_*`) and a password (try `MASK_PASSWORDS`) |
| `longtext@demo.test` | a breach whose texts exceed CTIM's limits |
| username `jdoe` | 4 records (`breach/data/usernames/jdoe`) |
| IPs `203.0.113.5`, `2001:db8::5` | 3 infected-machine records each |
| `breach/data/domains/<d>` | alice, bob and carol at `<d>`, and logins at `<d>` |
|   | stolen from 3 people elsewhere; `demo.test`: 6,423 records (7 pages), |
|   | `corp.example`: 2 pages |
| `breach/data/watchlist` | 60 employees over 90 days: a few new exposures a |
|   | week, three infected machines |
| `n<R>.b<B>.s<S>[.u<U>]@bench.test` | R records, B breaches of set S (.u: same |
|   | breaches, another user) |

Infostealer records (severity 25 and 26) carry one machine per person
(`infected_machine_id`, `user_hostname`, `ip_addresses` mixing public,
private and placeholder addresses, `infected_path`, `infected_time`,
`user_os`, `user_browser`) and the login each stolen credential opens
(`target_url`, `target_domain`, `target_subdomain`) on the person's own
domain.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import random
import re
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

NAMESPACE = uuid.UUID("0b7c4f56-8a5e-4d8b-9a0c-6c1f5b1e2d3a")

MISSING_CATALOG = 4040
COMBO_CATALOG = 3001
NOSITE_CATALOG = 3002
LONG_CATALOG = 3003  # texts beyond CTIM's limits
COUNTRIES = (("UNITED STATES", "US"), ("GERMANY", "DE"), ("FRANCE", "FR"),
             ("BRAZIL", "BR"), ("JAPAN", "JP"), ("PAKISTAN", "PK"))
WATCHLIST_BREACHES = (*range(1001, 1013), MISSING_CATALOG)
INFOSTEALER_SOURCE = 1013  # the infostealer logs' "breach"
UUIDS: dict[str, int] = {}  # catalog uuid → id, for look-ups by uuid
BENCH = re.compile(r"n(\d+)\.b(\d+)\.s(\d+)(?:\.u\d+)?")
WORDS = (
    "Atlas", "Beacon", "Cobalt", "Delta", "Ember", "Falcon", "Granite",
    "Harbor", "Indigo", "Juniper", "Krypton", "Lumen", "Meridian", "Nimbus",
    "Onyx", "Pioneer", "Quartz", "Raven", "Summit", "Tundra",
)
KINDS = ("Forum", "Shop", "Games", "Travel", "Fitness", "Social", "Mail")


def _rng(*parts: object) -> random.Random:
    seed = hashlib.sha256("|".join(map(str, parts)).encode()).hexdigest()
    return random.Random(seed)  # noqa: S311 (synthetic data, not security)


@functools.lru_cache(maxsize=4096)
def catalog(catalog_id: int) -> dict[str, Any] | None:
    """Return the catalog of an id, or None for the one the API lacks."""
    if catalog_id == MISSING_CATALOG or catalog_id <= 0:
        return None
    rng = _rng("catalog", catalog_id)
    # Consecutive ids get distinct names (140 before one repeats).
    name = f"{WORDS[catalog_id % len(WORDS)]}" \
        f" {KINDS[catalog_id * 3 % len(KINDS)]}"
    domain = name.lower().replace(" ", "") + ".example"
    site = "n/a" if catalog_id == NOSITE_CATALOG or catalog_id % 7 == 0 \
        else domain
    year = 2015 + catalog_id % 10
    doc: dict[str, Any] = {
        "id": catalog_id,
        "uuid": str(uuid.uuid5(NAMESPACE, f"catalog-{catalog_id}")),
        "title": f"{name} Breach",
        "short_title": name,
        "description": f"In {year}, {name} suffered a breach exposing"
        " email addresses and passwords.",
        "site": site,
        "site_description": f"{name} is a {name.split()[1].lower()} site.",
        "type": "PUBLIC" if catalog_id % 3 else "PRIVATE",
        "num_records": 1000 + rng.randrange(5_000_000),
        "spycloud_publish_date": f"{year + 1}-0{1 + catalog_id % 9}-15T00:00:00Z",
        "acquisition_date": f"{year + 1}-0{1 + catalog_id % 9}-01T00:00:00Z",
        "assets": {"email": 1000, "password": 800, "username": 300},
        "confidence": 1 + catalog_id % 3,
        "breach_main_category": "breach",
        "tlp": "amber",
    }
    if catalog_id == COMBO_CATALOG:
        doc.update(title="Combo List Collection", combo_list_flag="YES",
                   site="n/a", breach_main_category="combolist")
    if catalog_id == LONG_CATALOG:
        doc.update(title="Verbose " * 200 + "Breach",
                   description="A very long description. " * 250,
                   site_description="A site that says a lot. " * 250)
    UUIDS[doc["uuid"]] = catalog_id
    return doc


def _record(email: str, n: int, source_id: int, severity: int,
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    rng = _rng("record", email, n)
    local, _, domain = email.partition("@")
    country, code = rng.choice(COUNTRIES)
    doc: dict[str, Any] = {
        "email": email,
        "email_domain": domain,
        "email_username": local,
        "domain": domain,
        "document_id": str(uuid.uuid5(NAMESPACE, f"{email}#{n}")),
        "source_id": source_id,
        # SpyCloud publishes a record once it has the breach: after it.
        "spycloud_publish_date": _after(breach_date(source_id), rng),
        "severity": severity,
        "sighting": 1 + rng.randrange(3),
        "username": f"{local.split('.')[0]}{rng.randrange(100)}",
        "full_name": local.replace(".", " ").title(),
        "target_url": f"https://login.{domain}/",
        "country": country,
        "country_code": code,
    }
    # Real records leave out what does not apply, rather than send nulls.
    if rng.random() < 0.3:
        del doc["sighting"]
    if rng.random() < 0.2:
        del doc["username"]
    if severity >= 20:
        doc["password"] = f"demo-secret-{rng.getrandbits(48):012x}"
        doc["password_plaintext"] = doc["password"]
        doc["password_type"] = "plaintext"
    elif severity == 5:
        doc["password"] = f"$2b$12${rng.getrandbits(96):024x}"
        doc["password_type"] = "bcrypt"
    if severity >= 25:  # an infostealer: the machine, and where it logs in
        doc.update(device(email))
        doc.update(stolen_login(domain, rng))
        doc["spycloud_publish_date"] = _after(infection_day(email), rng, 4)
    if severity >= 30:
        doc["session_cookie"] = "********"
    if rng.random() < 0.7:
        doc["record_modification_date"] = doc["spycloud_publish_date"]
    doc.update(extra or {})
    if severity >= 25:  # the stealer struck the day before SpyCloud had it
        published = dt.date.fromisoformat(doc["spycloud_publish_date"][:10])
        doc["infected_time"] = f"{published - dt.timedelta(days=1)}" \
            f" {rng.randrange(24):02d}:{rng.randrange(60):02d}:00"
    return doc


def infection_day(email: str) -> dt.date:
    """Return the day an employee's machine was infected (in 2026)."""
    return dt.date(2026, 1, 1) + dt.timedelta(
        days=_rng("infection", email).randrange(270))


def breach_date(source_id: int) -> dt.date:
    """Return the day SpyCloud published a breach (its catalog's date)."""
    found = catalog(source_id)
    if found is None:  # the catalog the API lacks: an old breach
        return dt.date(2019, 5, 1)
    return dt.date.fromisoformat(found["spycloud_publish_date"][:10])


def _after(day: dt.date, rng: random.Random, most: int = 120) -> str:
    return f"{day + dt.timedelta(days=rng.randrange(most))}T00:00:00Z"


# Sites an employee's stolen credentials log in to: the customer's own.
LOGIN_SITES = ("https://login.{domain}/", "https://vpn.{domain}/remote/login",
               "https://mail.{domain}/owa/", "https://hr.{domain}/portal",
               "https://{domain}/wp-admin/")
HOST_PREFIXES = ("DESKTOP", "LAPTOP", "WS", "FIN-PC", "DEV")


@functools.lru_cache(maxsize=4096)
def device(email: str) -> dict[str, Any]:
    """Return the infected machine of an employee, as an infostealer's log
    reports it: one machine per person, its public and private addresses
    mixed (loopback and `0.0.0.0` too, as stealers often report), and now
    and then a placeholder where the stealer found nothing."""
    rng = _rng("device", email)
    machine = hashlib.sha1(  # noqa: S324 (an id, not a digest of a secret)
        f"machine:{email}".encode()).hexdigest()
    host = f"{rng.choice(HOST_PREFIXES)}-{rng.getrandbits(28):07X}"
    public = [f"203.0.113.{rng.randrange(1, 255)}"]
    if rng.random() < 0.4:
        public.append(f"2001:db8:{rng.randrange(1, 0xffff):x}::"
                      f"{rng.randrange(1, 0xffff):x}")
    private = rng.choice((["192.168.1.23"], ["10.20.4.17", "127.0.0.1"],
                          ["0.0.0.0"], []))  # noqa: S104 (a stealer's log)
    addresses = [*public, *private]
    rng.shuffle(addresses)
    found = {
        "infected_machine_id": machine,
        "user_hostname": host if rng.random() < 0.85 else "n/a",
        "ip_addresses": addresses,
        "infected_path": f"C:\\Users\\{email.partition('@')[0]}"
        f"\\AppData\\Local\\Temp\\{rng.getrandbits(20):05x}.exe",
        "user_os": rng.choice(("Windows 10 Pro", "Windows 11 Home",
                               "Windows 10 Enterprise")),
        "user_browser": rng.choice(("Google Chrome", "Microsoft Edge",
                                    "Mozilla Firefox")),
    }
    return found


def stolen_login(domain: str, rng: random.Random) -> dict[str, str]:
    """Return where one stolen credential logs in: a site of *domain*."""
    url = rng.choice(LOGIN_SITES).format(domain=domain)
    return {"target_url": url, "target_domain": domain,
            "target_subdomain": urlsplit(url).hostname or domain}


def _spread(email: str, count: int, sources: Sequence[int],
            severities: Sequence[int] = (2, 5, 20, 25)) -> list[dict]:
    return [
        _record(email, n, sources[n % len(sources)],
                severities[n % len(severities)])
        for n in range(count)
    ]


@functools.lru_cache(maxsize=256)
def records(email: str) -> tuple[dict[str, Any], ...]:
    """Return every record of an email, deterministically."""
    email = email.lower()
    local, _, domain = email.partition("@")
    bench = BENCH.fullmatch(local) if domain == "bench.test" else None
    if bench:
        count, breaches, group = (int(g) for g in bench.groups()[:3])
        sources = [5000 + group * 100 + i for i in range(max(breaches, 1))]
        return tuple(_spread(email, count, sources))
    special = {
        "nobody": lambda: [],
        "jane.doe": lambda: _spread(email, 6, [1001, 1002, 1003, 1004],
                                    (20, 25, 2, 5)),
        "heavy": lambda: _spread(email, 150, list(range(1010, 1020))),
        "huge": lambda: _spread(email, 2500, list(range(1030, 1035))),
        "combo": lambda: _spread(email, 3, [COMBO_CATALOG], (25, 20, 2)),
        "orphan": lambda: _spread(email, 2, [MISSING_CATALOG, 1001]),
        "nosite": lambda: _spread(email, 2, [NOSITE_CATALOG]),
        "lists": lambda: [_record(email, 0, 1002, 20, {
            "ip_addresses": ["203.0.113.5", "203.0.113.9"],
            "social_links": ["https://social.example/jd", "https://x.example/jd"],
        })],
        "masked": lambda: [_record(email, 0, 1003, 20, {
            "full_name": "********", "phone": "********", "dob": "********",
        })],
        "severities": lambda: [
            _record(email, n, 1005, sev)
            for n, sev in enumerate((2, 5, 20, 25, 26, 30))
        ],
        "recent": lambda: recent(email, (1, 5, 12, 25, 40, 75, 200, 800),
                                 [1008, 1009], (2, 5, 20, 25, 26)),
        "cards": lambda: [_record(email, 0, 1004, 20, {
            "cc_number": "4111111111111111", "cc_expiration": "12/29",
            "cc_code": "123"})],
        "longtext": lambda: _spread(email, 1, [LONG_CATALOG]),
        "infected": lambda: _spread(email, 5, [INFOSTEALER_SOURCE],
                                    (25, 26)),
    }
    if domain == "demo.test" and local in special:
        return tuple(special[local]())
    rng = _rng("email", email)
    count = rng.randrange(9)
    sources = rng.sample(range(1001, 1041), k=max(1, min(count, 4)))
    return tuple(_spread(email, count, sources))


def recent(email: str, days: Sequence[int], sources: Sequence[int],
           severities: Sequence[int]) -> list[dict[str, Any]]:
    """Records published the given numbers of days ago (UTC)."""
    today = dt.datetime.now(dt.timezone.utc).date()
    return [
        _record(email, n, sources[n % len(sources)],
                severities[n % len(severities)], {
                    "spycloud_publish_date":
                    f"{today - dt.timedelta(days=ago)}T00:00:00Z"})
        for n, ago in enumerate(days)
    ]


@functools.lru_cache(maxsize=256)
def usernames(name: str) -> tuple[dict[str, Any], ...]:
    """Return every record of a username, deterministically."""
    if name == "jdoe":
        return tuple(_record("john.doe@corp.example", n, source, sev,
                             {"username": name})
                     for n, (source, sev) in enumerate(
                         ((1001, 20), (1002, 25), (1006, 26), (1003, 5))))
    rng = _rng("username", name)
    return tuple(_record(f"{name.lower()}@corp.example", n,
                         rng.choice(range(1001, 1041)), rng.choice((5, 20)),
                         {"username": name})
                 for n in range(rng.randrange(4)))


@functools.lru_cache(maxsize=256)
def ips(address: str) -> tuple[dict[str, Any], ...]:
    """Return every record of an IP address (infected machines)."""
    demo = {"203.0.113.5": 3, "2001:db8::5": 3}
    rng = _rng("ip", address)
    count = demo.get(address, rng.randrange(3))
    return tuple(_record(f"host{n}@corp.example", n, 1007 + n, (25, 26)[n % 2],
                         {"ip_addresses": [address, "192.168.0.10"]})
                 for n in range(count))


# The demo's domains: each staff member's records (four each, severities
# 2 to 30) come after the named people's; `demo.test` holds more than five
# pages, `corp.example` (the watchlist's) two.
DOMAIN_STAFF = {"demo.test": 1600, "corp.example": 400}
DOMAIN_PEOPLE = {"demo.test": ("jane.doe", "infected", "severities")}
OUTSIDERS = 3  # people elsewhere whose stolen logins open the domain's sites


@functools.lru_cache(maxsize=16)
def domains(domain: str) -> tuple[dict[str, Any], ...]:
    """Return what SpyCloud holds for a domain: its employees' records
    (alice, bob and carol everywhere; the demo's named people and staff
    on its domains) and, from infostealer logs, the credentials of people
    elsewhere typed into the domain's login sites."""
    people = (*DOMAIN_PEOPLE.get(domain, ()), "alice", "bob", "carol")
    found = [r for local in people for r in records(f"{local}@{domain}")]
    found += [r for n in range(DOMAIN_STAFF.get(domain, 0))
              for r in _spread(f"staff{n}@{domain}", 4,
                               [1001 + n % 12, 1020 + n % 7],
                               (2, 20, 26, 30) if n % 50 == 0
                               else (2, 5, 20, 20))]
    for n in range(OUTSIDERS):
        email = f"contractor{n}@partner.example"
        found.append(_record(email, 500 + n, INFOSTEALER_SOURCE, 25,
                             stolen_login(domain, _rng("login", domain, n))))
    found.sort(key=lambda r: r["spycloud_publish_date"], reverse=True)
    return tuple(found)


WATCHLIST_PEOPLE = 60
WATCHLIST_EXPOSURES = 30  # breaches surfacing for a few people: ~2 a week
WATCHLIST_DEVICES = 3  # employees' machines an infostealer took


@functools.lru_cache(maxsize=4)
def watchlist(day: str) -> tuple[dict[str, Any], ...]:
    """Return the records of the customer's watchlist as of *day*, over the
    last 90 days, as a customer would see it: 60 watched employees;
    thirty times a breach surfaces for one to four of them (a few new
    exposures a week, each person in one to three records of it); three
    employees' machines taken by an infostealer, each stealing a handful
    of logins on the day it struck. Every record is dated after its
    breach's publish date; one breach has no catalog."""
    rng = _rng("watchlist", "corp.example")
    today = dt.date.fromisoformat(day)
    found = []
    for exposure in range(WATCHLIST_EXPOSURES):
        when = today - dt.timedelta(days=rng.randrange(91))
        source = rng.choice(WATCHLIST_BREACHES)
        severity = rng.choice((2, 5, 5, 20, 20, 20))
        for person in rng.sample(range(WATCHLIST_PEOPLE), rng.randint(1, 4)):
            email = f"employee{person}@corp.example"
            for n in range(rng.randint(1, 3)):
                found.append(_record(email, exposure * 100 + n, source,
                                     severity, _on(when)))
    for machine in range(WATCHLIST_DEVICES):
        when = today - dt.timedelta(days=rng.randrange(91))
        email = f"employee{rng.randrange(WATCHLIST_PEOPLE)}@corp.example"
        for n in range(rng.randint(4, 9)):
            found.append(_record(email, 10_000 + machine * 100 + n,
                                 INFOSTEALER_SOURCE, rng.choice((25, 26)),
                                 _on(when)))
    found.sort(key=lambda r: r["spycloud_publish_date"], reverse=True)
    return tuple(found)


def _on(day: dt.date) -> dict[str, str]:
    return {"spycloud_publish_date": f"{day}T00:00:00Z"}


def find(selector: str, value: str) -> tuple[dict[str, Any], ...]:
    """Return every record SpyCloud holds for `breach/data/<selector>`."""
    if selector == "emails":
        return records(value)
    if selector == "usernames":
        return usernames(value)
    if selector == "ips":
        return ips(value)
    if selector == "domains":
        return domains(value.lower())
    return watchlist(dt.datetime.now(dt.timezone.utc).date().isoformat())
