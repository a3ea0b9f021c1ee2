"""Pure mapping: checked SpyCloud records and catalogs → CTIM documents.

Follows `docs/ctim.md`: one Sighting per record, one Indicator per
catalog, one Relationship per sighting whose catalog has an indicator;
texts from SpyCloud cut to CTIM's limits; passwords masked on request. No
I/O and no Flask here: everything arrives as arguments.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import operator
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from . import pivots
from .observables import email
from .records import Catalog, Record

# An observable as CTIM names it: (type, value as sent).
Observable = tuple[str, str]

SCHEMA_VERSION = "1.0.17"
SOURCE = "Spycloud"
PORTAL_CATALOG_URL = "https://portal.spycloud.com/breach/catalog/{uuid}"

# The uuid5 namespace of every transient id this relay makes.
ID_NAMESPACE = uuid.UUID("5b0d4a4e-5f4e-4c1b-9a57-2f3c9a2d1e60")
_NAMESPACE = ID_NAMESPACE.bytes  # (a property that builds them each time)

# Record fields that other Sighting fields already show (docs/ctim.md).
HIDDEN_FIELDS = frozenset({
    "sighting", "infected_machine_id", "email_domain", "domain",
    "email_username", "document_id", "source_id", "spycloud_publish_date",
    "severity",
})

# Fields whose values MASK_PASSWORDS hides (and every `cc_*` field).
MASKED_FIELDS = frozenset({"password", "password_plaintext"})
MASKED_PREFIX = "cc_"

# CTIM's string limits, in characters (docs/xdr.md, "CTIM's length limits").
SHORT_TEXT = 1024  # titles, tags, column names
MEDIUM_TEXT = 2048  # short_description
LONG_TEXT = 5000  # description, an external reference's description

# Upper bounds of SpyCloud severity codes → CTIM severity; above → High.
SEVERITY_BANDS = ((2, "Low"), (5, "Medium"))
CATALOG_CONFIDENCE = {1: "High", 2: "Medium", 3: "Low"}


@functools.lru_cache(maxsize=4096)
def time(value: dt.datetime) -> str:
    """Format a UTC time as CTIM wants it, with microseconds and `Z`
    (cached: SpyCloud's dates are often days, shared by many records)."""
    utc = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    # isoformat is several times cheaper than strftime; below year 1000
    # they differ (strftime does not pad the year).
    return utc.isoformat(timespec="microseconds") + "Z" if utc.year >= 1000 \
        else utc.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def transient_id(kind: str, *names: str) -> str:
    """Return a stable `transient:<kind>-<uuid5>` id for the given names."""
    # uuid.uuid5 without building a UUID object, its version and variant
    # set in the hex text: three ids per record make this the mapping's
    # hottest line.
    h = hashlib.sha1(
        _NAMESPACE + "\x1f".join(names).encode(),
        usedforsecurity=False,  # RFC 4122 name-based id, not a secret
    ).hexdigest()
    return (f"transient:{kind}-{h[:8]}-{h[8:12]}-5{h[13:16]}"
            f"-{_VARIANT[h[16]]}{h[17:20]}-{h[20:32]}")


# The RFC 4122 variant's hex digit (10xx) for each first digit of the
# clock sequence.
_VARIANT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


def severity(record: Record, catalog: Catalog | None) -> str:
    """Map SpyCloud's severity code; combo lists are always Medium."""
    if catalog is not None and catalog.combo_list:
        return "Medium"
    if record.severity is None or record.severity < 0:
        return "Unknown"
    for upper, label in SEVERITY_BANDS:
        if record.severity <= upper:
            return label
    return "High"


def data_table(record: Record, mask: bool = False) -> dict[str, Any]:
    """Show the record's remaining fields as a one-row string table; with
    *mask*, password and card values are masked."""
    fields = record.fields
    keys = tuple(fields)
    layout = _layout(keys)
    row = [v if type(v) is str else _cell(v)
           for v in layout.pick(tuple(fields.values()))]
    if mask:
        for j in layout.secret:
            row[j] = masked(row[j], keys[layout.shown[j]])
    return {"columns": layout.columns, "rows": [row]}


@dataclass(frozen=True)
class _Layout:
    """The data table of records with the same field names."""

    shown: tuple[int, ...]  # positions of the fields shown
    secret: tuple[int, ...]  # which shown cells hold secrets
    # The table's columns: one list shared by every table of this layout
    # (a document is never changed once built, and written at once).
    columns: list[dict[str, str]]
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]  # the shown values


@functools.lru_cache(maxsize=1024)
def _layout(names: tuple[str, ...]) -> _Layout:
    """Work out the table of records with these field names once (the
    records of one source share them)."""
    shown = tuple(i for i, name in enumerate(names)
                  if name not in HIDDEN_FIELDS)
    secret = tuple(j for j, i in enumerate(shown) if _secret(names[i]))
    columns = [{"name": cut(names[i], SHORT_TEXT), "type": "string"}
               for i in shown]
    pick: Callable[[tuple[Any, ...]], tuple[Any, ...]]
    if len(shown) > 1:
        pick = operator.itemgetter(*shown)
    else:
        def pick(values: tuple[Any, ...]) -> tuple[Any, ...]:
            return tuple(values[i] for i in shown)
    return _Layout(shown, secret, columns, pick)


MASK = "********"  # a secret's mask: the same width whatever its length
CARD_NUMBER = "cc_number"


def masked(value: str, field: str = "password") -> str:
    """Hide a secret, its length too; a card number keeps its last four
    digits (as a receipt shows it)."""
    if field == CARD_NUMBER:
        digits = [c for c in value if c.isdigit()]
        if len(digits) > 8:
            return "****" + "".join(digits[-4:])
    return MASK


def cut(text: str, limit: int) -> str:
    """Cut *text* to CTIM's *limit* of characters, ending in `…` if cut."""
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _secret(field: str) -> bool:
    return field in MASKED_FIELDS or field.startswith(MASKED_PREFIX)


def sighting(
    observable: Observable, record: Record, catalog: Catalog | None,
    mask: bool = False,
) -> dict[str, Any]:
    """Map one breach record found through *observable* to a Sighting."""
    kind, value = observable
    observables = [{"type": kind, "value": value}]
    observed = time(record.published)
    observed_time = {"start_time": observed, "end_time": observed}
    external_ids = [record.document_id, str(record.source_id)]
    if record.infected_machine_id:
        external_ids.append(record.infected_machine_id)
    doc: dict[str, Any] = {
        # An email's ids are those the relay always gave; other types name
        # their type, so a record found two ways gives two sightings.
        "id": transient_id("sighting", value, record.document_id)
        if kind == "email" else
        transient_id("sighting", kind, value, record.document_id),
        "type": "sighting",
        "schema_version": SCHEMA_VERSION,
        "source": SOURCE,
        "title": "Reported to Spycloud",
        "confidence": "High",
        "internal": False,
        "count": record.sighting,
        "observables": observables,
        "observed_time": observed_time,
        "targets": [{
            "type": kind,
            "observables": _targeted(observables, record)
            if kind == "domain" else observables,
            "observed_time": observed_time,
        }],
        "severity": severity(record, catalog),
        "external_ids": external_ids,
        "description": cut("Present in "
                           + (catalog.title if catalog else "breach"),
                           LONG_TEXT),
        "relations": [],
        "data": data_table(record, mask),
    }
    if catalog is not None and catalog.uuid:
        doc["source_uri"] = PORTAL_CATALOG_URL.format(uuid=catalog.uuid)
    if catalog is not None and catalog.site:
        doc["relations"].append(
            _related(observables[0], "Leaked_From",
                     {"type": "domain", "value": catalog.site}))
    if record.infected_machine_id or (record.severity or 0) >= 25:
        _add_pivots(doc, record.fields, record, observed_time)
    return doc


def _targeted(observables: list[dict[str, str]],
              record: Record) -> list[dict[str, str]]:
    """A domain's target: the domain, and the employee the record concerns
    (its own email, when it has a valid one)."""
    address = record.fields.get("email")
    address = email(address) if isinstance(address, str) else None
    return observables + [{"type": "email", "value": address}] if address \
        else observables


# Relation names from CTIM's vocabulary of observable relations (see
# docs/ctim.md): the credential was extracted from the infected machine,
# and sent to the site where it logs in.
FROM_MACHINE = "Extracted_From"
TO_LOGIN = "Sent_To"
DEVICE_TARGET = "endpoint"


def _add_pivots(doc: dict[str, Any], fields: Mapping[str, Any],
                record: Record, observed_time: dict[str, str]) -> None:
    """Add the infected machine as a target, and relations from the
    investigated observable to the machine and the stolen login."""
    found = pivots.of(fields, record.severity, record.infected_machine_id)
    if found is None:
        return
    source = doc["observables"][0]
    if found.machine is not None:
        infected = found.machine.infected
        seen = {"start_time": time(infected), "end_time": time(infected)} \
            if infected else observed_time
        target: dict[str, Any] = {
            "type": DEVICE_TARGET,
            "observables": list(found.machine.observables),
            "observed_time": seen,
        }
        if found.machine.os:
            target["os"] = found.machine.os
        doc["targets"].append(target)
        doc["relations"].extend(_related(source, FROM_MACHINE, o)
                                for o in found.machine.observables)
    doc["relations"].extend(_related(source, TO_LOGIN, o)
                            for o in found.targets)


def _related(source: dict[str, str], relation: str,
             related: dict[str, str]) -> dict[str, Any]:
    # The observables are shared, not copied: nothing changes a document
    # once it is built, and it is written as JSON at once.
    return {"origin": "Spycloud Breach Module", "relation": relation,
            "source": source, "related": related}


def indicator(catalog: Catalog) -> dict[str, Any]:
    """Map one breach catalog to an Indicator."""
    doc: dict[str, Any] = {
        "id": indicator_id(catalog.id),
        "type": "indicator",
        "schema_version": SCHEMA_VERSION,
        "producer": SOURCE,
        "title": cut(catalog.title, SHORT_TEXT),
        "short_description": cut(catalog.title, MEDIUM_TEXT),
        "confidence": CATALOG_CONFIDENCE.get(catalog.confidence or 0, "Low"),
        "external_ids": [str(catalog.id)]
        + ([catalog.uuid] if catalog.uuid else []),
        "external_references": external_references(catalog),
        "tags": [cut(tag, SHORT_TEXT) for tag in catalog.assets],
    }
    if catalog.description is not None:
        doc["description"] = cut(catalog.description, LONG_TEXT)
    doc["valid_time"] = (
        {"start_time": time(catalog.published)} if catalog.published else {}
    )
    return doc


@functools.lru_cache(maxsize=4096)
def indicator_id(catalog_id: int) -> str:
    """Return the stable id of the Indicator of a catalog."""
    return transient_id("indicator", str(catalog_id))


def external_references(catalog: Catalog) -> list[dict[str, str]]:
    """Point at the breached site and at SpyCloud's portal page."""
    refs = []
    if catalog.site_description and catalog.site:
        refs.append({
            "source_name": SOURCE,
            "description": cut(catalog.site_description, LONG_TEXT),
            "url": "https://" + catalog.site,  # a checked domain
        })
    if catalog.uuid and catalog.description:
        refs.append({
            "source_name": SOURCE,
            "description": cut(catalog.description, LONG_TEXT),
            "url": PORTAL_CATALOG_URL.format(uuid=catalog.uuid),
            "external_id": catalog.uuid,
        })
    return refs


def relationship(sighting_id: str, indicator_id_: str) -> dict[str, Any]:
    """Link a Sighting to the Indicator of its breach."""
    return {
        "id": transient_id("relationship", sighting_id, indicator_id_),
        "type": "relationship",
        "schema_version": SCHEMA_VERSION,
        "relationship_type": "sighting-of",
        "source_ref": sighting_id,
        "target_ref": indicator_id_,
    }


def observe(
    observable: Observable,
    records: Sequence[Record],
    catalogs: Mapping[int, Catalog],
    mask: bool = False,
    made: dict[int, dict[str, Any]] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Map the records of one observable (type, value) and their catalogs
    to CTIM entities. *made* holds the Indicators one answer has built
    already (a breach is shared by many of its observables)."""
    made = {} if made is None else made
    sightings, indicators, relationships = [], [], []
    seen: set[int] = set()
    for record in records:
        catalog = catalogs.get(record.source_id)
        doc = sighting(observable, record, catalog, mask)
        sightings.append(doc)
        if catalog is None:
            continue
        if catalog.id not in seen:
            seen.add(catalog.id)
            if catalog.id not in made:
                made[catalog.id] = indicator(catalog)
            indicators.append(made[catalog.id])
        relationships.append(relationship(doc["id"], indicator_id(catalog.id)))
    return {
        "sightings": sightings,
        "indicators": indicators,
        "relationships": relationships,
    }


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(_cell(item) for item in value)
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return ""
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)
