"""The module type registered in XDR matches what the relay reads."""

from __future__ import annotations

import json
from pathlib import Path

from relay import ctim, observables, options

MODULE_TYPE = Path(__file__).parents[1] / "module_type.json"


def test_module_type() -> None:
    doc = json.loads(MODULE_TYPE.read_text())
    spec = {f["key"]: f for f in doc["configuration_spec"]}
    assert spec["custom_key"]["type"] == "api_key"
    assert spec["custom_key"]["required"] is True
    assert spec["custom_CTR_ENTITIES_LIMIT"]["type"] == "integer"
    assert [c["id"] for c in doc["capabilities"]] == [
        "health", "observe", "refer", "tiles"]
    props = doc["properties"]
    assert props["auth-type"] == "configuration-token"
    assert props["configuration-token-alg"] == "RS256"
    assert props["custom_jwks_host"].startswith("visibility.")
    assert set(props["supported-apis"]) == {
        "health", "observe/observables", "refer/observables", "tiles",
        "tiles/tile", "tiles/tile-data"}
    assert doc["logo"].startswith("data:image/svg+xml;base64,")
    for field in ("title", "default_name", "short_description",
                  "description", "tips"):
        assert doc[field].strip()


def test_every_option_is_declared_with_what_xdr_shows() -> None:
    doc = json.loads(MODULE_TYPE.read_text())
    spec = {f["key"]: f for f in doc["configuration_spec"]}
    fields = {f"custom_{name.upper()}".replace("custom_ENTITIES",
                                               "custom_CTR_ENTITIES")
              for name in options.Options.__dataclass_fields__}
    assert fields <= set(spec)
    for key in fields:
        field = spec[key]
        assert field["required"] is False
        assert field["label"].strip() and field["tooltip"].strip()
    assert spec["custom_MIN_SEVERITY"]["type"] == "options"
    assert [int(o["value"]) for o in spec["custom_MIN_SEVERITY"]["options"]] \
        == list(options.SEVERITIES)
    assert spec["custom_LOOKBACK_DAYS"]["type"] == "integer"
    assert spec["custom_MASK_PASSWORDS"]["type"] == "boolean"


def test_the_mask_passwords_tooltip_shows_the_mask_the_relay_writes() -> None:
    doc = json.loads(MODULE_TYPE.read_text())
    spec = {f["key"]: f for f in doc["configuration_spec"]}
    tooltip = spec["custom_MASK_PASSWORDS"]["tooltip"]
    assert f" as {ctim.masked('hunter2')} " in tooltip
    card = ctim.masked("4111 1111 1111 1234", ctim.CARD_NUMBER)
    assert f"as {card})" in tooltip


def test_the_module_names_every_type_it_looks_up() -> None:
    doc = json.loads(MODULE_TYPE.read_text())
    (observe,) = [c for c in doc["capabilities"] if c["id"] == "observe"]
    for kind in observables.CHECKS:
        assert f" {kind}" in observe["description"], kind
        assert observables.NAMES[kind].split()[0].lower() in \
            doc["description"].lower(), kind
