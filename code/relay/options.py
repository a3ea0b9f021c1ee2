"""The module's options: claims from the module's `custom_<NAME>` fields
(docs/xdr.md, "Module options"), read with their defaults; a value that
cannot be used gives the default and a warning naming it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from . import text
from .errors import RelayError, warning
from .settings import FALSE, TRUE

DEFAULT_ENTITIES_LIMIT = 100

# The module's options (claims from `custom_<NAME>` fields), docs/xdr.md.
SEVERITIES = (2, 5, 20, 25, 26, 30)  # MIN_SEVERITY's choices: SpyCloud's codes
MAX_LOOKBACK_DAYS = 36_500
SHOWN_LENGTH = 40  # characters of an unusable value a warning shows


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
            warnings.append(warning(
                "invalid argument",
                f"The module option {name} has an unusable value"
                f" {_shown(raw)}; its default ({shown_default}) was used.",
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


# Stands for any number of more digits than this: above every bound.
MAX_DIGITS = 18
HUGE: int = 10 ** MAX_DIGITS


def _integer(raw: Any) -> int | None:
    """Read a whole number, or a string of one (of any length: Python will
    not convert one of thousands of digits, and no option needs one)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, str):
        digits = raw.strip()
        if not (digits.isascii() and digits.isdecimal()):
            return None
        digits = digits.lstrip("0") or "0"
        return HUGE if len(digits) > MAX_DIGITS else int(digits)
    if isinstance(raw, float) and raw.is_integer():
        return min(int(raw), HUGE)
    if isinstance(raw, int):
        return min(raw, HUGE)
    return None


def _shown(raw: Any) -> str:
    """The value as the warning shows it: quoted, one line, cut short."""
    if isinstance(raw, str):
        return repr(text.label(raw, SHOWN_LENGTH))
    try:
        return text.label(repr(raw), SHOWN_LENGTH)
    except ValueError:  # an integer too long for repr
        return "(a number too long to show)"


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
    if isinstance(raw, int):
        return {1: True, 0: False}.get(raw)
    word = raw.strip().lower() if isinstance(raw, str) else ""
    return True if word in TRUE else False if word in FALSE else None


def _positive(raw: Any) -> int | None:
    """Read `CTR_ENTITIES_LIMIT`: a positive integer or integer string."""
    value = _integer(raw)
    return value if value is not None and value > 0 else None
