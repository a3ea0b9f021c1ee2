"""Breach data as text: labels and markdown cells (relay/text.py), and the
markdown tile rendered by a markdown library as XDR would render it."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from markdown_it import MarkdownIt

from relay import text, tiles
from relay.records import parse_record

HOSTILE = [
    "![x](http://127.0.0.1:1/t.png)",
    "[Reset password](http://phish.example/reset)",
    "<img src=x onerror=alert(1)>",
    "<script>alert(2)</script>",
    "<details><summary>open</summary>x</details>",
    "<http://phish.example/autolink>",
    "<jane@phish.example>",
    "[ref]: http://phish.example/ref",
    "[ref]",
    "`code` **bold** _it_ ~~gone~~",
    "&lt;img src=x&gt; &#60;b&#62;",
    "row\r| forged | 1 | High | 2026-01-01 |",
    "row\n| forged | 1 | High | 2026-01-01 |",
    "a\x85b\u2028c\u2029d",
    "\u202egnp.exe",
    "zero\u200bwidth\ufeff",
    "# heading",
    "> quote",
    "- item",
    "1. item",
    "\\",
    "x" * 1000,
]


@pytest.mark.parametrize("given, shown", [
    ("Cobalt Travel", "Cobalt Travel"),
    ("a\nb\rc\td\x85e\u2028f\u2029g", "a b c d e f g"),
    ("\u202eevil\u202c\u200b\u2066x\u2069\x00\x1b", "evilx"),
    ("é ü 日本", "é ü 日本"),
    ("x" * 200, "x" * 200),
    ("x" * 201, "x" * 199 + "…"),
])
def test_label_is_one_line_of_visible_text(given: str, shown: str) -> None:
    assert text.label(given) == shown


@pytest.mark.parametrize("given, shown", [
    ("jane.doe@demo.test", "jane\\.doe\\@demo\\.test"),
    ("[a](b)", "\\[a\\]\\(b\\)"),
    ("<b>&amp;", "\\<b\\>\\&amp\\;"),
    ("a|b", "a\\|b"),
    ("\\", "\\\\"),
    ("row\r| x |", "row \\| x \\|"),
    ("x" * 129, "x" * 127 + "…"),
])
def test_markdown_escapes_every_metacharacter(given: str, shown: str) -> None:
    assert text.markdown(given) == shown


@pytest.mark.parametrize("given", [
    "plain", "with space", "ünïcødé", "日本語",
])
def test_visible_text(given: str) -> None:
    assert text.visible(given)


@pytest.mark.parametrize("given", [
    "a\u202eb", "a\u200bb", "a\ufeffb", "a\nb", "a\x00b", "a\u2028b",
    "a\ue000b",
])
def test_invisible_text(given: str) -> None:
    assert not text.visible(given)


NOW = dt.datetime(2026, 3, 15, tzinfo=dt.timezone.utc)


def most_exposed(identities: list[str]) -> list[str]:
    start, end = tiles.window("last_7_days", NOW)
    found = tiles.Exposure(start, end)
    for n, who in enumerate(identities):
        found.add(parse_record({
            "email": who, "document_id": f"d{n}", "source_id": 1,
            "spycloud_publish_date": "2026-03-14T00:00:00Z", "severity": 20}))
    lines: list[str] = tiles.tile_data("spycloud-most-exposed", found,
                                       {})["data"]
    return lines


def test_the_markdown_tile_renders_hostile_data_as_text() -> None:
    lines = most_exposed(HOSTILE[:10])
    rendered = MarkdownIt("commonmark").enable("table").render(
        "\n".join(lines))
    # Nothing but the table's own elements comes out: no link, image or
    # element of the data's, and exactly one row per identity.
    assert set(re.findall(r"<(\w+)", rendered)) == {
        "table", "thead", "tbody", "tr", "th", "td"}
    assert rendered.count("<tr>") == 1 + 10
    assert 'href="' not in rendered and 'src="' not in rendered
    cells = [html.unescape(cell) for cell in
             re.findall(r"<tr>\n<td>(.*?)</td>", rendered, re.S)]
    assert sorted(cells) == sorted(HOSTILE[:10])


@pytest.mark.parametrize("hostile", HOSTILE)
def test_each_hostile_identity_is_one_cell_of_its_own_text(
        hostile: str) -> None:
    lines = most_exposed([hostile])
    rendered = MarkdownIt("commonmark").enable("table").render(
        "\n".join(lines))
    assert set(re.findall(r"<(\w+)", rendered)) <= {
        "table", "thead", "tbody", "tr", "th", "td"}
    assert rendered.count("<tr>") == 2
    (cell,) = re.findall(r"<tr>\n<td>(.*?)</td>", rendered, re.S)
    assert html.unescape(cell) == text.label(hostile, text.CELL_LENGTH)
