"""Pure: observables and their breaches → XDR's pivot links (refer).

Follows `docs/xdr.md`, "Refer": a Search link for every supported
observable, and a Browse link to the portal page of each breach it appears
in, newest first, at most five.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import quote

from . import text
from .observables import NAMES
from .records import Catalog

MAX_BROWSE = 5
SEARCH_PATH = "/watchlist/records/view/all"  # no per-identifier deep link
CATALOG_PATH = "/breach/catalog/{uuid}"


def search(portal: str, kind: str, value: str) -> dict[str, object]:
    """The link to SpyCloud's portal, to look the observable up there."""
    return {
        "id": f"ref-spycloud-search-{kind}-{quote(value, safe='')}",
        "title": f"Search SpyCloud for this {NAMES[kind]}",
        "description": "Open the SpyCloud portal's breach records to look up"
        f" this {NAMES[kind]}",
        "url": portal + SEARCH_PATH,
        "categories": ["Search", "SpyCloud"],
    }


def browse(portal: str, kind: str,
           catalogs: Iterable[Catalog]) -> list[dict[str, object]]:
    """Links to the portal pages of the first five breaches (with a uuid)."""
    links: list[dict[str, object]] = []
    for catalog in catalogs:
        if not catalog.uuid:
            continue
        title = text.label(catalog.title)
        links.append({
            "id": f"ref-spycloud-detail-breach-{catalog.uuid}",
            "title": f"Browse breach: {title}",
            "description": f"SpyCloud's description of {title},"
            f" in which this {NAMES[kind]} appears",
            "url": portal + CATALOG_PATH.format(uuid=catalog.uuid),
            "categories": ["Browse", "SpyCloud"],
        })
        if len(links) == MAX_BROWSE:
            break
    return links
