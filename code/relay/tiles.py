"""Pure: watchlist records → the five dashboard tiles (docs/tiles.md).

`Exposure` folds the records of one period's window, one at a time, into
the few counts the tiles need (raw records are never kept); `tile_data`
shapes those counts as XDR's tile types want them. No I/O here.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import text
from .records import Record

# Period id → its length; the window is the period that ends now.
PERIODS = {
    "last_24_hours": dt.timedelta(hours=24),
    "last_7_days": dt.timedelta(days=7),
    "last_30_days": dt.timedelta(days=30),
    "last_60_days": dt.timedelta(days=60),
    "last_90_days": dt.timedelta(days=90),
}
DEFAULT_PERIOD = "last_7_days"
WEEKLY = frozenset({"last_60_days", "last_90_days"})  # bars per week

# Severity classes (SpyCloud's codes) and password kinds, in display order.
CLASSES = (
    ("email_only", "Email only"), ("informational", "Informational"),
    ("plaintext", "Plaintext password"), ("infected", "Infected device"),
    ("cookies", "Session cookies"), ("access", "Access data"),
    ("other", "Other"),
)
CLASS_OF = {2: 0, 5: 1, 20: 2, 25: 3, 26: 4, 30: 5}
OTHER = 6
PASSWORDS = ("plaintext", "hashed", "none")
TOP = 10
TOP_BREACHES = "spycloud-top-breaches"
Shape = dict[str, Any]  # a tile type's own keys and its data

TILES = {
    "spycloud-exposure-summary": {
        "type": "metric_group",
        "title": "SpyCloud exposure summary",
        "short_description": "Exposed identities, records, plaintext"
        " passwords and infected devices",
        "description": "How much of the organisation SpyCloud found exposed"
        " in the period: distinct identities (emails or usernames) on the"
        " watchlist, breach records, records with a plaintext password"
        " (severity 20 and above) and distinct infected devices.",
    },
    "spycloud-exposures-by-severity": {
        "type": "donut_graph",
        "title": "SpyCloud exposures by severity",
        "short_description": "Breach records by severity and password kind",
        "description": "Breach records of the watchlist in the period, by"
        " SpyCloud severity (outer ring) and by what kind of password they"
        " expose (inner ring: plaintext, hashed, none).",
    },
    "spycloud-new-exposures": {
        "type": "vertical_bar_chart",
        "title": "SpyCloud new exposures",
        "short_description": "Breach records published per day (per week"
        " over 60 and 90 days)",
        "description": "Breach records of the watchlist as SpyCloud"
        " published them, per day (per week for the 60 and 90 day"
        " periods), each bar split by severity.",
    },
    "spycloud-top-breaches": {
        "type": "horizontal_bar_chart",
        "title": "SpyCloud top breaches",
        "short_description": "The 10 breaches exposing most identities",
        "description": "The ten breaches that expose the most distinct"
        " identities of the watchlist in the period, each split by the worst"
        " severity an identity has in it.",
    },
    "spycloud-most-exposed": {
        "type": "markdown",
        "title": "SpyCloud most exposed identities",
        "short_description": "The 10 identities with most breach records",
        "description": "The ten identities of the watchlist with the most"
        " breach records in the period: their records, worst severity and"
        " newest exposure.",
    },
}
# Icons XDR draws (names Cisco's own relays use; any other draws nothing).
ICONS = ("user", "bulleted-list", "critical-stop", "device-type")


def definition(tile_id: str) -> dict[str, Any]:
    """Return a tile's definition as `/tiles` and `/tiles/tile` show it."""
    tile = TILES[tile_id]
    return {"id": tile_id, **tile, "tags": ["spycloud", "breach"],
            "periods": list(PERIODS), "default_period": DEFAULT_PERIOD}


def window(period: str, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """Return the (start, end) of *period* ending at *now*."""
    return now - PERIODS[period], now


@dataclass
class Exposure:
    """The counts of one period's watchlist records, folded one by one."""

    start: dt.datetime
    end: dt.datetime
    weekly: bool = False
    records: int = 0
    plaintext: int = 0
    identities: Counter[str] = field(default_factory=Counter)
    devices: set[str] = field(default_factory=set)
    severity: Counter[tuple[int, int]] = field(default_factory=Counter)
    buckets: Counter[tuple[dt.date, int]] = field(default_factory=Counter)
    breaches: dict[int, dict[str, int]] = field(
        default_factory=lambda: defaultdict(dict))
    worst: dict[str, int] = field(default_factory=dict)
    newest: dict[str, dt.datetime] = field(default_factory=dict)
    outside: int = 0  # records SpyCloud sent from outside the window

    def add(self, record: Record) -> None:
        """Count one record, if it was published within the window."""
        if not self.start <= record.published <= self.end:
            self.outside += 1
            return
        fields = record.fields
        who = str(fields.get("email") or fields.get("username") or "unknown")
        severity = record.severity if record.severity is not None else -1
        kind = CLASS_OF.get(severity, OTHER)
        self.records += 1
        self.plaintext += severity >= 20
        self.identities[who] += 1
        if record.infected_machine_id:
            self.devices.add(record.infected_machine_id)
        self.severity[kind, _password(fields.get("password_type"))] += 1
        self.buckets[self.bucket(record.published), kind] += 1
        seen = self.breaches[record.source_id]
        seen[who] = max(seen.get(who, -1), severity)
        self.worst[who] = max(self.worst.get(who, -1), severity)
        if who not in self.newest or record.published > self.newest[who]:
            self.newest[who] = record.published

    def top_breaches(self) -> list[int]:
        """Return the ids of the breaches exposing most identities."""
        ranked = sorted(self.breaches.items(),
                        key=lambda item: (-len(item[1]), item[0]))
        return [source for source, _ in ranked[:TOP]]

    def bucket(self, published: dt.datetime) -> dt.date:
        """The day (or week's Monday) a time falls in."""
        day = published.date()
        return day - dt.timedelta(days=day.weekday()) if self.weekly else day


def _password(kind: Any) -> int:
    if not kind:
        return 2
    return 0 if str(kind).lower() == "plaintext" else 1


def tile_data(tile_id: str, exposure: Exposure,
              titles: Mapping[int, str]) -> dict[str, Any]:
    """Return the data of one tile for one period's *exposure*; *titles*
    names the top breaches (a breach without a catalog shows its id)."""
    times = {"start_time": _time(exposure.start),
             "end_time": _time(exposure.end)}
    shaped = SHAPES[TILES[tile_id]["type"]](exposure, titles)
    return {"observed_time": times, "valid_time": times,
            "cache_scope": "org", **shaped}


def _summary(exposure: Exposure, titles: Mapping[int, str]) -> Shape:
    values = (("Exposed identities", len(exposure.identities)),
              ("Breach records", exposure.records),
              ("Plaintext passwords", exposure.plaintext),
              ("Infected devices", len(exposure.devices)))
    return {"data": [{"icon": icon, "label": label, "value": value,
                      "value_unit": "integer"}
                     for icon, (label, value) in zip(ICONS, values)]}


def _donut(exposure: Exposure, titles: Mapping[int, str]) -> Shape:
    data = []
    for index in range(len(CLASSES)):
        segments = [{"key": kind, "value": exposure.severity[index, kind]}
                    for kind in range(len(PASSWORDS))
                    if exposure.severity[index, kind]]
        total = sum(s["value"] for s in segments)
        if total:
            data.append({"key": index, "value": total, "segments": segments})
    return {"labels": [[label for _, label in CLASSES], list(PASSWORDS)],
            "label_headers": ["Severity", "Password"], "data": data}


def _series() -> list[dict[str, str]]:
    return [{"key": key, "label": label} for key, label in CLASSES]


def _bars(exposure: Exposure, titles: Mapping[int, str]) -> Shape:
    """A bar for every day (or week) of the period, zero where nothing
    was published: a gap in the chart is a quiet day, never a missing
    one."""
    days: dict[dt.date, Counter[int]] = defaultdict(Counter)
    for (day, kind), count in exposure.buckets.items():
        days[day][kind] += count
    step = dt.timedelta(days=7 if exposure.weekly else 1)
    day, last = (exposure.bucket(exposure.start),
                 exposure.bucket(exposure.end))
    data = []
    while day <= last:
        # XDR reads a timestamp key as epoch milliseconds.
        epoch = int(dt.datetime.combine(day, dt.time(),
                                        dt.timezone.utc).timestamp()) * 1000
        counts = days.get(day, Counter())
        data.append({
            "key": epoch, "label": day.isoformat(),
            "value": sum(counts.values()),
            "values": [{"key": CLASSES[kind][0], "value": count}
                       for kind, count in sorted(counts.items())],
        })
        day += step
    return {"key_type": "timestamp", "keys": _series(), "data": data}


def _top_breaches(exposure: Exposure, titles: Mapping[int, str]) -> Shape:
    data = []
    for source in exposure.top_breaches():
        worst = Counter(CLASS_OF.get(s, OTHER)
                        for s in exposure.breaches[source].values())
        data.append({
            "key": str(source),
            "label": text.label(titles.get(source, f"Breach {source}")),
            "value": len(exposure.breaches[source]),
            "values": [{"key": CLASSES[kind][0], "value": count}
                       for kind, count in sorted(worst.items())],
        })
    return {"key_type": "string", "keys": _series(), "data": data}


def _most_exposed(exposure: Exposure, titles: Mapping[int, str]) -> Shape:
    lines = ["| Identity | Records | Worst severity | Newest exposure |",
             "|---|---|---|---|"]
    ranked = sorted(exposure.identities.items(),
                    key=lambda item: (-item[1], item[0]))[:TOP]
    for who, count in ranked:
        worst = exposure.worst[who]
        worst_label = CLASSES[CLASS_OF.get(worst, OTHER)][1]
        code = f" ({worst})" if worst >= 0 else ""
        lines.append(f"| {text.markdown(who)} | {count} | {worst_label}{code} |"
                     f" {exposure.newest[who].date().isoformat()} |")
    if not ranked:
        lines.append("| no exposure in this period | | | |")
    return {"data": lines}


def _time(value: dt.datetime) -> str:
    return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


SHAPES = {
    "metric_group": _summary,
    "donut_graph": _donut,
    "vertical_bar_chart": _bars,
    "horizontal_bar_chart": _top_breaches,
    "markdown": _most_exposed,
}
