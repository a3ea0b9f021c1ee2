"""The dashboard tiles under gunicorn, checked against the emulator's own
watchlist, figure by figure."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from devtools import synthetic
from relay import text, tiles

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("clean_log")]


def tile_data(stack, tile_id: str, period: str) -> dict:
    token = stack.token()
    stack.tokens.append(token)
    answer = requests.post(stack.url + "/tiles/tile-data", timeout=30,
                           json={"tile_id": tile_id, "period": period},
                           headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    return answer.json()


def watchlist_reads(stack) -> int:
    return stack.emulator.calls["breach/data/watchlist"]


def test_five_tiles_at_once_cost_one_read(stack) -> None:
    before = watchlist_reads(stack)
    with ThreadPoolExecutor(5) as pool:
        answers = list(pool.map(lambda t: tile_data(stack, t, "last_60_days"),
                                tiles.TILES))
    assert all("data" in answer for answer in answers)
    assert watchlist_reads(stack) - before == 1  # one read of one page
    tile_data(stack, "spycloud-top-breaches", "last_60_days")
    assert watchlist_reads(stack) - before == 1  # cached


def expected(data: dict) -> list[dict]:
    """The emulator's watchlist records inside the answer's window."""
    window = data["observed_time"]
    start, end = (dt.datetime.fromisoformat(window[k].replace("Z", "+00:00"))
                  for k in ("start_time", "end_time"))
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    return [r for r in synthetic.watchlist(today)
            if start <= dt.datetime.fromisoformat(
                r["spycloud_publish_date"].replace("Z", "+00:00")) <= end]


@pytest.mark.parametrize("period", list(tiles.PERIODS))
def test_figures_agree_with_the_watchlist(stack, period) -> None:
    answers = {t: tile_data(stack, t, period) for t in tiles.TILES}
    assert all(a.get("errors", []) == [{
        "type": "warning", "code": "not found",
        "message": "SpyCloud did not return results for 4040"}]
        or "errors" not in a for a in answers.values())
    data = {t: a["data"] for t, a in answers.items()}
    records = expected(data["spycloud-exposure-summary"])
    who = Counter(r["email"] for r in records)
    assert [m["value"] for m in data["spycloud-exposure-summary"]["data"]] \
        == [len(who), len(records),
            sum(r["severity"] >= 20 for r in records),
            len({r["infected_machine_id"] for r in records
                 if "infected_machine_id" in r})]
    by_class = Counter(r["severity"] for r in records)
    donut = {d["key"]: d["value"]
             for d in data["spycloud-exposures-by-severity"]["data"]}
    assert donut == {index: by_class[code] for code, index in
                     tiles.CLASS_OF.items() if by_class[code]}
    bars = data["spycloud-new-exposures"]["data"]
    assert sum(b["value"] for b in bars) == len(records)
    assert sum(v["value"] for b in bars for v in b["values"]) == len(records)
    breaches: dict[int, set[str]] = {}
    for r in records:
        breaches.setdefault(r["source_id"], set()).add(r["email"])
    top = sorted(breaches, key=lambda s: (-len(breaches[s]), s))[:10]
    shown = data["spycloud-top-breaches"]["data"]
    assert [int(b["key"]) for b in shown] == top
    assert [b["value"] for b in shown] == [len(breaches[s]) for s in top]
    assert [b["label"] for b in shown] == [
        (synthetic.catalog(s) or {"title": f"Breach {s}"})["title"]
        for s in top]
    most = data["spycloud-most-exposed"]["data"]
    leader = sorted(who.items(), key=lambda item: (-item[1], item[0]))[0]
    assert most[2].startswith(f"| {text.markdown(leader[0])} | {leader[1]} |")
