"""`make tiles`: the five dashboard tiles of the demo data, drawn.

Starts the emulator and the relay, asks `/tiles/tile-data` for each tile of
one period, and draws what XDR would: metrics, a donut, stacked bars and a
table, as one static HTML page with inline SVG (no script, no network).
With Chromium on the machine it also takes a screenshot of the page.

    cd code && python -m devtools.tiles_page [--period last_30_days]
"""

from __future__ import annotations

import argparse
import html
import math
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

import requests
from markdown_it import MarkdownIt

from relay import tiles

from .stack import CODE, Stack

OUT = CODE / ".demo"
COLOURS = ("#8fa3b8", "#5b9bd5", "#f0a030", "#d9534f", "#8e44ad", "#7f8c8d")
# The inner ring (plaintext, hashed, none): colours the outer ring does not
# use, so a colour means one thing only.
INNER = ("#1f2d3d", "#2e9e6b", "#e3d7f0")
TILE_IDS = ("spycloud-exposure-summary", "spycloud-exposures-by-severity",
            "spycloud-new-exposures", "spycloud-top-breaches",
            "spycloud-most-exposed")


def fetch(stack: Stack, period: str) -> dict[str, dict]:
    """Return each tile's definition and data, as the relay answers them."""
    headers = {"Authorization": f"Bearer {stack.token()}"}
    found = {}
    for tile_id in TILE_IDS:
        definition = requests.post(stack.url + "/tiles/tile", timeout=30,
                                   headers=headers,
                                   json={"tile_id": tile_id}).json()["data"]
        answer = requests.post(stack.url + "/tiles/tile-data", timeout=30,
                               headers=headers,
                               json={"tile_id": tile_id, "period": period})
        found[tile_id] = {"definition": definition, **answer.json()}
    return found


def metrics(data: dict) -> str:
    cells = "".join(
        f'<div class="metric"><div class="value">{m["value"]:,}</div>'
        f'<div class="label">{html.escape(m["label"])}</div></div>'
        for m in data["data"])
    return f'<div class="metrics">{cells}</div>'


def _arc(cx: float, cy: float, r0: float, r1: float, a0: float,
         a1: float, colour: str, title: str) -> str:
    if a1 - a0 >= 2 * math.pi - 1e-9:
        a1 = a0 + 2 * math.pi - 1e-4
    large = 1 if a1 - a0 > math.pi else 0
    p = [(cx + r * math.sin(a), cy - r * math.cos(a))
         for r, a in ((r1, a0), (r1, a1), (r0, a1), (r0, a0))]
    path = (f"M{p[0][0]:.1f},{p[0][1]:.1f} A{r1},{r1} 0 {large} 1 "
            f"{p[1][0]:.1f},{p[1][1]:.1f} L{p[2][0]:.1f},{p[2][1]:.1f} "
            f"A{r0},{r0} 0 {large} 0 {p[3][0]:.1f},{p[3][1]:.1f} Z")
    return (f'<path d="{path}" fill="{colour}" stroke="#fff">'
            f"<title>{html.escape(title)}</title></path>")


def donut(data: dict) -> str:
    outer, inner = data["labels"]
    total = sum(d["value"] for d in data["data"]) or 1
    parts, angle = [], 0.0
    for d in data["data"]:
        span = 2 * math.pi * d["value"] / total
        parts.append(_arc(110, 110, 70, 100, angle, angle + span,
                          COLOURS[d["key"]], f'{outer[d["key"]]}: {d["value"]}'))
        sub = angle
        for s in d["segments"]:
            width = 2 * math.pi * s["value"] / total
            parts.append(_arc(110, 110, 40, 68, sub, sub + width,
                              INNER[s["key"]], f'{inner[s["key"]]}: {s["value"]}'))
            sub += width
        angle += span
    legend = "".join(
        f'<li><span style="background:{COLOURS[d["key"]]}"></span>'
        f'{html.escape(outer[d["key"]])} ({d["value"]})</li>'
        for d in data["data"]) + "".join(
        f'<li><span style="background:{INNER[i]}"></span>password:'
        f' {html.escape(name)} ({count})</li>'
        for i, (name, count) in enumerate(zip(inner, _inner_counts(data))))
    return (f'<div class="chart"><svg width="220" height="220">{"".join(parts)}'
            f'<text x="110" y="115" text-anchor="middle">{total}</text></svg>'
            f'<ul class="legend">{legend}</ul></div>')


def _inner_counts(data: dict) -> list[int]:
    counts = [0] * len(data["labels"][1])
    for d in data["data"]:
        for s in d["segments"]:
            counts[s["key"]] += s["value"]
    return counts


def _colour(keys: list[dict], key: str) -> str:
    return COLOURS[[k["key"] for k in keys].index(key)]


def vertical(data: dict) -> str:
    bars = data["data"]
    top = max((b["value"] for b in bars), default=1) or 1
    width = max(8, min(40, 760 // max(len(bars), 1) - 4))
    parts = []
    for i, bar in enumerate(bars):
        x, y = 40 + i * (width + 4), 200
        for v in bar["values"]:
            h = 180 * v["value"] / top
            y -= h
            colour = _colour(data["keys"], v["key"])
            parts.append(f'<rect x="{x}" y="{y:.1f}" width="{width}"'
                         f' height="{h:.1f}" fill="{colour}"><title>'
                         f'{bar["label"]}: {v["key"]} {v["value"]}</title></rect>')
        if i % max(1, len(bars) // 8) == 0:
            parts.append(f'<text x="{x}" y="215" font-size="10">'
                         f'{bar["label"][5:]}</text>')
    parts.append(f'<text x="0" y="25" font-size="10">{top}</text>'
                 '<line x1="36" y1="200" x2="800" y2="200" stroke="#999"/>')
    return f'<svg width="820" height="225">{"".join(parts)}</svg>{_keys(data)}'


def horizontal(data: dict) -> str:
    bars = data["data"]
    top = max((b["value"] for b in bars), default=1) or 1
    parts = []
    for i, bar in enumerate(bars):
        y, x = 10 + i * 26, 230
        parts.append(f'<text x="0" y="{y + 15}" font-size="12">'
                     f'{html.escape(bar["label"][:32])}</text>')
        for v in bar["values"]:
            w = 520 * v["value"] / top
            parts.append(f'<rect x="{x:.1f}" y="{y}" width="{w:.1f}" height="20"'
                         f' fill="{_colour(data["keys"], v["key"])}"/>')
            x += w
        parts.append(f'<text x="{x + 4:.1f}" y="{y + 15}" font-size="12">'
                     f'{bar["value"]}</text>')
    return (f'<svg width="820" height="{20 + 26 * len(bars)}">{"".join(parts)}'
            f'</svg>{_keys(data)}')


def _keys(data: dict) -> str:
    return '<ul class="legend inline">' + "".join(
        f'<li><span style="background:{COLOURS[i]}"></span>'
        f'{html.escape(k["label"])}</li>' for i, k in enumerate(data["keys"])
    ) + "</ul>"


def table(data: dict) -> str:
    """Render the markdown tile as a markdown library does (XDR renders
    it with one): its escapes show as the characters they are."""
    return MarkdownIt("commonmark").enable("table").render(
        "\n".join(data["data"]))


DRAW = {"metric_group": metrics, "donut_graph": donut,
        "vertical_bar_chart": vertical, "horizontal_bar_chart": horizontal,
        "markdown": table}


def page(found: dict[str, dict], period: str) -> str:
    """Return the HTML page of the five tiles."""
    sections = []
    for tile in found.values():
        definition, data = tile["definition"], tile.get("data")
        drawn = DRAW[definition["type"]](data) if data else ""
        notes = "".join(f'<p class="note">{html.escape(e["message"])}</p>'
                        for e in tile.get("errors", ()))
        sections.append(
            f'<section><h2>{html.escape(definition["title"])}</h2>'
            f'<p class="sub">{html.escape(definition["short_description"])}'
            f"</p>{drawn}{notes}</section>")
    window = next(iter(found.values()))["data"]["observed_time"]
    return f"""<!doctype html><html><head><meta charset="utf-8">
<title>SpyCloud tiles, {period}</title><style>
body {{ font-family: DejaVu Sans, sans-serif; background: #eef1f4;
       margin: 16px; color: #223; }}
section {{ background: #fff; border-radius: 6px; padding: 12px 16px;
          margin-bottom: 14px; box-shadow: 0 1px 2px #0002; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin: 0; }}
.sub {{ color: #667; font-size: 12px; margin: 2px 0 10px; }}
.metrics {{ display: flex; gap: 12px; }}
.metric {{ flex: 1; background: #f6f8fa; padding: 10px; border-radius: 4px; }}
.value {{ font-size: 28px; font-weight: bold; }}
.label {{ font-size: 12px; color: #556; }}
.chart {{ display: flex; align-items: center; gap: 20px; }}
.legend {{ list-style: none; padding: 0; font-size: 12px; }}
.legend.inline li {{ display: inline-block; margin-right: 12px; }}
.legend span {{ display: inline-block; width: 10px; height: 10px;
               margin-right: 5px; }}
table {{ border-collapse: collapse; font-size: 13px; }}
td, th {{ border-bottom: 1px solid #dde; padding: 4px 12px; text-align: left; }}
.note {{ color: #a60; font-size: 12px; }}
</style></head><body>
<h1>SpyCloud tiles for XDR: {period} ({window["start_time"][:10]} to
{window["end_time"][:10]})</h1>
{"".join(sections)}</body></html>"""


def height(found: dict[str, dict]) -> int:
    """Return the page's height in pixels, from what each tile draws, so
    the screenshot holds every row (with room to spare)."""
    drawn = {"metric_group": lambda d: 80, "donut_graph": lambda d: 230,
             "vertical_bar_chart": lambda d: 270,
             "horizontal_bar_chart": lambda d: 60 + 26 * len(d["data"]),
             "markdown": lambda d: 32 * len(d["data"])}
    total = 90  # the title
    for tile in found.values():
        data = tile.get("data")
        total += 100 + 40 * len(tile.get("errors", ()))
        if data:
            total += drawn[tile["definition"]["type"]](data)
    return total + 60


def screenshot(path: Path, png: Path, tall: int) -> bool:
    """Take a screenshot of *path*, *tall* pixels high, with headless
    Chromium, if installed."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        return False
    with tempfile.TemporaryDirectory() as profile:
        subprocess.run(  # noqa: S603 (fixed argv, local file)
            [browser, "--headless", "--no-sandbox", "--disable-gpu",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", f"--user-data-dir={profile}",
             "--hide-scrollbars", f"--window-size=880,{tall}",
             f"--screenshot={png}", path.as_uri()],
            check=True, capture_output=True, timeout=60)
    return png.exists()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="make tiles")
    parser.add_argument("--period", default="last_30_days",
                        choices=list(tiles.PERIODS),
                        help="the tiles' period (default: last_30_days)")
    args = parser.parse_args(argv)
    OUT.mkdir(exist_ok=True)
    with Stack() as stack:
        found = fetch(stack, args.period)
    out = OUT / "tiles.html"
    out.write_text(page(found, args.period))
    print(f"tiles drawn in {out}")
    png = OUT / "tiles.png"
    if screenshot(out, png, height(found)):
        print(f"screenshot in {png}")
    else:
        print("no Chromium here: open the page in a browser"
              " (Debian: apt-get install chromium)")


if __name__ == "__main__":
    main()
