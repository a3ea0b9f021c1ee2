"""The module's options: claims from the module's `custom_<NAME>` fields
(docs/xdr.md, "Module options"), read with their defaults; a value that
cannot be used gives the default and a warning naming it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import RelayError, warning

DEFAULT_ENTITIES_LIMIT = 100

# The module's options (claims from `custom_<NAME>` fields), docs/xdr.md.
SEVERITIES = (2, 5, 20, 25)  # MIN_SEVERITY's choices: SpyCloud's codes
MAX_LOOKBACK_DAYS = 36_500
TRUE = frozenset({"true", "yes", "1", "on"})
FALSE = frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True)
class Options:
    """How one module instance wants its observables looked up."""

    entities_limit: int = DEFAULT_ENTITIES_LIMIT
    min_severity: int = SEVERITIES[0]
    lookback_days: int | None = None
    mask_passwords: bool = False


def parse_options(
    claims: Mapping[str, Any], max_entities_limit: int = 1000
) -> tuple[Options, tuple[RelayError, ...]]:
    """Read the module options from verified claims. A value that cannot be
    used gives the default and a warning naming the field and the default
    as an XDR user would write it."""
    warnings: list[RelayError] = []

    def option(name: str, read: Callable[[Any], Any], default: Any,
               shown_default: str) -> Any:
        raw = claims.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            return default
        value = read(raw)
        if value is None:
            shown = raw if len(str(raw)) <= 40 else str(raw)[:37] + "..."
            warnings.append(warning(
                "invalid argument",
                f"The module option {name} has an unusable value {shown!r};"
                f" its default ({shown_default}) was used.",
            ))
            return default
        return value

    options = Options(
        entities_limit=min(option("CTR_ENTITIES_LIMIT", _positive,
                                  DEFAULT_ENTITIES_LIMIT,
                                  str(DEFAULT_ENTITIES_LIMIT)),
                           max_entities_limit),
        min_severity=option("MIN_SEVERITY", _severity, SEVERITIES[0],
                            str(SEVERITIES[0])),
        lookback_days=option("LOOKBACK_DAYS", _days, None,
                             "no limit: records of any age"),
        mask_passwords=option("MASK_PASSWORDS", _boolean, False, "false"),
    )
    return options, tuple(warnings)


def _integer(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str) and raw.strip().isdecimal():
        return int(raw.strip())
    if isinstance(raw, float) and raw.is_integer():
        return int(raw)
    return raw if isinstance(raw, int) else None


def _severity(raw: Any) -> int | None:
    value = _integer(raw)
    return value if value in SEVERITIES else None


def _days(raw: Any) -> int | None:
    value = _integer(raw)
    return value if value is not None and 0 < value <= MAX_LOOKBACK_DAYS \
        else None


def _boolean(raw: Any) -> bool | None:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower() if isinstance(raw, (str, int)) else ""
    return True if text in TRUE else False if text in FALSE else None


def _positive(raw: Any) -> int | None:
    """Read `CTR_ENTITIES_LIMIT`: a positive integer or integer string."""
    value = _integer(raw)
    return value if value is not None and value > 0 else None
