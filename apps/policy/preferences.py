"""A recipient's preferences as the API and the hosted page show and take them:
`{"categories": {key: {channel: bool}}, "quiet_hours": {"start", "end"} | null,
"commercial_unsubscribed": bool}`."""

from datetime import time

from apps.core import clock
from apps.core.errors import InvalidInput
from apps.messaging.models import Channel
from apps.policy.models import Preference
from apps.policy.selectors import TenantPolicy


def preference_data(*, preference: Preference, policy: TenantPolicy) -> dict:
    """Every category of the tenant with each channel on or off as it applies to this recipient."""
    categories = {}
    for key, category in sorted(policy.categories.items()):
        chosen = preference.channels.get(key, {})
        categories[key] = {
            "name": category.name, "kind": category.kind, "required": category.required,
            "channels": {c: True if category.required else chosen.get(c, c not in category.channels_off)
                         for c in Channel.values}}
    quiet = ({"start": f"{preference.quiet_start:%H:%M}", "end": f"{preference.quiet_end:%H:%M}"}
             if preference.quiet_start is not None else None)
    return {"categories": categories, "quiet_hours": quiet,
            "commercial_unsubscribed": preference.commercial_unsubscribed_at is not None}


def preference_apply(*, preference: Preference, policy: TenantPolicy, raw: dict) -> Preference:
    """Apply the fields given in `raw` (others stay); every field at fault is reported by path."""
    errors: dict[str, list[str]] = {}
    channels = {key: dict(value) for key, value in preference.channels.items()}
    categories = raw.get("categories")
    if categories is not None and not isinstance(categories, dict):
        errors["categories"] = ["Must be a JSON object: category key → {channel: true|false}."]
        categories = None
    for key, choices in (categories or {}).items():
        category = policy.categories.get(key)
        if category is None:
            errors[f"categories.{key}"] = [f"{key!r} is not a category of this tenant."]
            continue
        if not isinstance(choices, dict):
            errors[f"categories.{key}"] = ["Must be a JSON object: channel → true|false."]
            continue
        for channel, on in choices.items():
            path = f"categories.{key}.{channel}"
            if channel not in Channel.values:
                errors[path] = [f"Not a channel; one of {', '.join(Channel.values)}."]
            elif not isinstance(on, bool):
                errors[path] = ["Must be true or false."]
            elif category.required and not on:
                errors[path] = [f"{key!r} is a required category; it cannot be muted."]
            else:
                channels.setdefault(key, {})[channel] = on
    if "quiet_hours" in raw:
        try:
            preference.quiet_start, preference.quiet_end = _quiet_hours(raw["quiet_hours"])
        except InvalidInput as exc:
            errors.update(exc.fields)
    unsubscribed = raw.get("commercial_unsubscribed")
    if unsubscribed is not None and not isinstance(unsubscribed, bool):
        errors["commercial_unsubscribed"] = ["Must be true or false."]
    elif unsubscribed is not None and unsubscribed != (preference.commercial_unsubscribed_at is not None):
        preference.commercial_unsubscribed_at = clock.now() if unsubscribed else None
    if errors:
        raise InvalidInput("Invalid preferences: " + "; ".join(errors), fields=errors)
    preference.channels = channels
    return preference


def _quiet_hours(value) -> tuple[time | None, time | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict):
        raise InvalidInput.field("quiet_hours", 'A JSON object {"start": "21:00", "end": "08:00"}, or null.')
    ends = []
    for name in ("start", "end"):
        try:
            ends.append(time.fromisoformat(value.get(name)))
        except (TypeError, ValueError):
            raise InvalidInput.field(f"quiet_hours.{name}", "A local time, HH:MM (e.g. 21:00).") from None
    if ends[0] == ends[1]:
        raise InvalidInput.field("quiet_hours.end", "Quiet hours must not start and end at the same time.")
    return ends[0], ends[1]
