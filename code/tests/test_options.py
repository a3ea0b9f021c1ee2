"""The module's options, read from verified claims (docs/xdr.md)."""

from __future__ import annotations

import pytest

from relay import options


@pytest.mark.parametrize(("claims", "expected", "named"), [
    ({}, options.Options(), []),
    ({"MIN_SEVERITY": "20", "LOOKBACK_DAYS": 30, "MASK_PASSWORDS": "Yes"},
     options.Options(min_severity=20, lookback_days=30, mask_passwords=True), []),
    ({"MIN_SEVERITY": 25, "LOOKBACK_DAYS": "7", "MASK_PASSWORDS": True},
     options.Options(min_severity=25, lookback_days=7, mask_passwords=True), []),
    ({"MASK_PASSWORDS": "0", "LOOKBACK_DAYS": 3.0, "MIN_SEVERITY": " 5 "},
     options.Options(min_severity=5, lookback_days=3), []),
    ({"MIN_SEVERITY": "", "LOOKBACK_DAYS": " ", "MASK_PASSWORDS": None},
     options.Options(), []),
    ({"MIN_SEVERITY": "26"}, options.Options(min_severity=26), []),
    ({"MIN_SEVERITY": 30}, options.Options(min_severity=30), []),
    ({"MIN_SEVERITY": 31}, options.Options(), ["MIN_SEVERITY"]),
    ({"MIN_SEVERITY": "high"}, options.Options(), ["MIN_SEVERITY"]),
    ({"MIN_SEVERITY": True}, options.Options(), ["MIN_SEVERITY"]),
    ({"LOOKBACK_DAYS": 0}, options.Options(), ["LOOKBACK_DAYS"]),
    ({"LOOKBACK_DAYS": "-3"}, options.Options(), ["LOOKBACK_DAYS"]),
    ({"LOOKBACK_DAYS": 2.5}, options.Options(), ["LOOKBACK_DAYS"]),
    ({"LOOKBACK_DAYS": 10**9}, options.Options(), ["LOOKBACK_DAYS"]),
    ({"MASK_PASSWORDS": "maybe"}, options.Options(), ["MASK_PASSWORDS"]),
    ({"MASK_PASSWORDS": 2}, options.Options(), ["MASK_PASSWORDS"]),
    ({"MASK_PASSWORDS": []}, options.Options(), ["MASK_PASSWORDS"]),
    ({"CTR_ENTITIES_LIMIT": 5000}, options.Options(entities_limit=1000), []),
    ({"CTR_ENTITIES_LIMIT": 5}, options.Options(entities_limit=5), []),
    ({"CTR_ENTITIES_LIMIT": " 8 "}, options.Options(entities_limit=8), []),
    *[({"CTR_ENTITIES_LIMIT": bad}, options.Options(), ["CTR_ENTITIES_LIMIT"])
      for bad in ("lots", "abc", 0, "0", -3, "2.5", 2.5, True, [], "٣",
                  "0" * 5000)],
    # Numbers of any length are read, never raise: past every bound.
    ({"CTR_ENTITIES_LIMIT": "9" * 5000}, options.Options(entities_limit=1000),
     []),
    ({"CTR_ENTITIES_LIMIT": "0" * 5000 + "7"}, options.Options(
        entities_limit=7), []),
    ({"CTR_ENTITIES_LIMIT": 10**400}, options.Options(entities_limit=1000),
     []),
    ({"MIN_SEVERITY": "2" * 5000}, options.Options(), ["MIN_SEVERITY"]),
    ({"LOOKBACK_DAYS": "7" * 5000}, options.Options(), ["LOOKBACK_DAYS"]),
    ({"MASK_PASSWORDS": "1" * 5000}, options.Options(), ["MASK_PASSWORDS"]),
    ({"MASK_PASSWORDS": 1}, options.Options(mask_passwords=True), []),
])
def test_options(claims: dict, expected: options.Options,
                 named: list) -> None:
    parsed, warnings = options.parse_options(claims, max_entities_limit=1000)
    assert parsed == expected
    assert [(w.type, w.code) for w in warnings] == [
        ("warning", "invalid argument")] * len(named)
    for warning, name in zip(warnings, named):
        shown = repr(claims[name]) if len(str(claims[name])) < 40 \
            else repr(str(claims[name])[:39] + "…")
        assert warning.message.startswith(f"The module option {name} has an"
                                          f" unusable value {shown}")
        assert len(warning.message) < 200


@pytest.mark.parametrize(("claims", "default"), [
    ({"CTR_ENTITIES_LIMIT": "abc"}, "100"),
    ({"MIN_SEVERITY": 7}, "2"),
    ({"LOOKBACK_DAYS": 0}, "no limit: records of any age"),
    ({"MASK_PASSWORDS": "maybe"}, "false"),
])
def test_a_warning_names_the_default_as_a_user_writes_it(
        claims: dict, default: str) -> None:
    _, (warned,) = options.parse_options(claims)
    assert warned.message.endswith(f"; its default ({default}) was used.")
