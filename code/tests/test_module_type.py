"""The module type registered in XDR matches what the relay reads."""

from __future__ import annotations

import json
from pathlib import Path

MODULE_TYPE = Path(__file__).parents[1] / "module_type.json"


def test_module_type() -> None:
    doc = json.loads(MODULE_TYPE.read_text())
    spec = {f["key"]: f for f in doc["configuration_spec"]}
    assert spec["custom_key"]["type"] == "api_key"
    assert spec["custom_key"]["required"] is True
    assert spec["custom_CTR_ENTITIES_LIMIT"]["type"] == "integer"
    assert [c["id"] for c in doc["capabilities"]] == ["health", "observe"]
    props = doc["properties"]
    assert props["auth-type"] == "configuration-token"
    assert props["configuration-token-alg"] == "RS256"
    assert props["custom_jwks_host"].startswith("visibility.")
    assert set(props["supported-apis"]) == {"health", "observe/observables"}
    assert doc["logo"].startswith("data:image/svg+xml;base64,")
    for field in ("title", "default_name", "short_description",
                  "description", "tips"):
        assert doc[field].strip()
