"""Pure mapping: checked SpyCloud records and catalogs → CTIM documents.

Follows `docs/ctim.md`: one Sighting per record, one Indicator per
catalog, one Relationship per sighting whose catalog has an indicator. No
I/O and no Flask here: everything arrives as arguments.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from .records import Catalog, Record

SCHEMA_VERSION = "1.0.17"
SOURCE = "Spycloud"
PORTAL_CATALOG_URL = "https://portal.spycloud.com/breach/catalog/{uuid}"

# The uuid5 namespace of every transient id this relay makes.
ID_NAMESPACE = uuid.UUID("5b0d4a4e-5f4e-4c1b-9a57-2f3c9a2d1e60")

# Record fields that other Sighting fields already show (docs/ctim.md).
HIDDEN_FIELDS = frozenset({
    "sighting", "infected_machine_id", "email_domain", "domain",
    "email_username", "document_id", "source_id", "spycloud_publish_date",
    "severity",
})

# Upper bounds of SpyCloud severity codes → CTIM severity; above → High.
SEVERITY_BANDS = ((2, "Low"), (5, "Medium"))
CATALOG_CONFIDENCE = {1: "High", 2: "Medium", 3: "Low"}


@functools.lru_cache(maxsize=4096)
def time(value: dt.datetime) -> str:
    """Format a UTC time as CTIM wants it, with microseconds and `Z`
    (cached: SpyCloud's dates are days, shared by many records)."""
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def transient_id(kind: str, *names: str) -> str:
    """Return a stable `transient:<kind>-<uuid5>` id for the given names."""
    # uuid.uuid5 without building a UUID object: three ids per record make
    # this the mapping's hottest line.
    digest = bytearray(hashlib.sha1(
        ID_NAMESPACE.bytes + "\x1f".join(names).encode(),
        usedforsecurity=False,  # RFC 4122 name-based id, not a secret
    ).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    h = digest.hex()
    return f"transient:{kind}-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


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


def data_table(record: Record) -> dict[str, Any]:
    """Show the record's remaining fields as a one-row string table."""
    shown = [(k, v) for k, v in record.fields if k not in HIDDEN_FIELDS]
    return {
        "columns": _columns(tuple(k for k, _ in shown)),
        "rows": [[v if type(v) is str else _cell(v) for _, v in shown]],
    }


@functools.lru_cache(maxsize=1024)
def _columns(names: tuple[str, ...]) -> list[dict[str, str]]:
    # Records of one source share their field names: build the list once.
    return [{"name": name, "type": "string"} for name in names]


def sighting(
    email: str, record: Record, catalog: Catalog | None
) -> dict[str, Any]:
    """Map one breach record of *email* to a Sighting."""
    observables = [{"type": "email", "value": email}]
    observed = time(record.published)
    observed_time = {"start_time": observed, "end_time": observed}
    external_ids = [record.document_id, str(record.source_id)]
    if record.infected_machine_id:
        external_ids.append(record.infected_machine_id)
    doc: dict[str, Any] = {
        "id": transient_id("sighting", email, record.document_id),
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
            "type": "email",
            "observables": observables,
            "observed_time": observed_time,
        }],
        "severity": severity(record, catalog),
        "external_ids": external_ids,
        "description": "Present in "
        + (catalog.title if catalog else "breach"),
        "relations": [],
        "data": data_table(record),
    }
    if catalog is not None and catalog.uuid:
        doc["source_uri"] = PORTAL_CATALOG_URL.format(uuid=catalog.uuid)
    if catalog is not None and catalog.site:
        doc["relations"] = [{
            "origin": "Spycloud Breach Module",
            "relation": "Leaked_From",
            "source": {"type": "email", "value": email},
            "related": {"type": "domain", "value": catalog.site},
        }]
    return doc


@functools.lru_cache(maxsize=1024)
def indicator(catalog: Catalog) -> dict[str, Any]:
    """Map one breach catalog to an Indicator (cached: a breach is shared
    by many observables and requests)."""
    doc: dict[str, Any] = {
        "id": indicator_id(catalog.id),
        "type": "indicator",
        "schema_version": SCHEMA_VERSION,
        "producer": SOURCE,
        "title": catalog.title,
        "short_description": catalog.title,
        "confidence": CATALOG_CONFIDENCE.get(catalog.confidence, "Low"),
        "external_ids": [str(catalog.id)]
        + ([catalog.uuid] if catalog.uuid else []),
        "external_references": external_references(catalog),
        "tags": list(catalog.assets),
    }
    if catalog.description is not None:
        doc["description"] = catalog.description
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
            "description": catalog.site_description,
            "url": catalog.site,
        })
    if catalog.uuid and catalog.description:
        refs.append({
            "source_name": SOURCE,
            "description": catalog.description,
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
    email: str,
    records: Sequence[Record],
    catalogs: Mapping[int, Catalog],
) -> dict[str, list[dict[str, Any]]]:
    """Map the records of one email and their catalogs to CTIM entities."""
    sightings, indicators, relationships = [], [], []
    seen: set[int] = set()
    for record in records:
        catalog = catalogs.get(record.source_id)
        doc = sighting(email, record, catalog)
        sightings.append(doc)
        if catalog is None:
            continue
        if catalog.id not in seen:
            seen.add(catalog.id)
            indicators.append(indicator(catalog))
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
