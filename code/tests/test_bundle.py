"""The answer's bundle: observables' documents written as they are mapped,
assembled in the order observables were sent, shared ones once."""

from __future__ import annotations

import orjson

from relay.jsonio import Bundle


def entities(name: str, *breaches: str) -> dict[str, list[dict[str, str]]]:
    """One observable's documents: a sighting per breach, its indicator
    (shared by every observable of that breach) and their relationship."""
    return {
        "sightings": [{"id": f"s-{name}-{b}"} for b in breaches],
        "indicators": [{"id": f"i-{b}", "title": b} for b in breaches],
        "relationships": [{"id": f"r-{name}-{b}"} for b in breaches],
    }


def test_parts_are_assembled_in_the_order_added_shared_ones_once() -> None:
    bundle = Bundle()
    # Mapped as SpyCloud answered (b first), added as the analyst sent them.
    b = bundle.write(entities("b", "x", "y"))
    a = bundle.write(entities("a", "y"))
    nothing = bundle.write({"sightings": [], "indicators": [],
                            "relationships": []})
    for written in (a, nothing, b):
        bundle.add(written)
    assert orjson.loads(orjson.dumps(bundle.json())) == {
        "sightings": {"count": 3, "docs": [
            {"id": "s-a-y"}, {"id": "s-b-x"}, {"id": "s-b-y"}]},
        "indicators": {"count": 2, "docs": [
            {"id": "i-y", "title": "y"}, {"id": "i-x", "title": "x"}]},
        "relationships": {"count": 3, "docs": [
            {"id": "r-a-y"}, {"id": "r-b-x"}, {"id": "r-b-y"}]},
    }


def test_a_shared_document_is_written_once() -> None:
    bundle = Bundle()
    first = bundle.write(entities("a", "x"))["indicators"][0]
    again = bundle.write(entities("b", "x"))["indicators"][0]
    assert again is first


def test_empty_kinds_are_left_out() -> None:
    bundle = Bundle()
    bundle.add(bundle.write({"sightings": [{"id": "s"}], "indicators": [],
                             "relationships": []}))
    assert orjson.loads(orjson.dumps(bundle.json())) == {
        "sightings": {"count": 1, "docs": [{"id": "s"}]}}
