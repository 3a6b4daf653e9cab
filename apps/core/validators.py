"""Validators for values shared across apps (tenants' defaults, recipients' profiles)."""

import re
import zoneinfo
from functools import cache

from django.core.exceptions import ValidationError

# BCP 47 language tag, the subset people use: language[-script][-REGION], e.g. en, pt-BR, zh-Hant-TW.
LOCALE_RE = re.compile(r"^[a-zA-Z]{2,3}([-_][a-zA-Z]{4})?([-_]([a-zA-Z]{2}|[0-9]{3}))?$")


@cache
def _timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def validate_timezone(value: str) -> None:
    if value and value not in _timezones():
        raise ValidationError(
            "%(value)s is not an IANA time zone name (e.g. Europe/Berlin).",
            code="invalid_timezone", params={"value": value},
        )


def validate_locale(value: str) -> None:
    if value and not LOCALE_RE.match(value):
        raise ValidationError(
            "%(value)s is not a locale tag (e.g. en, pt-BR).",
            code="invalid_locale", params={"value": value},
        )


def normalize_locale(value: str) -> str:
    """`pt_br` / `PT-br` → `pt-BR`: language lower case, region upper case, script title case."""
    parts = value.replace("_", "-").split("-")
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.title() if len(part) == 4 else part.upper())
    return "-".join(out)
