"""The policy's decisions as pure functions (no database, no clock): see docs/policy.md.

Eligibility, per channel: address suppression list → required category → commercial
unsubscribe → recipient preference → category default (the nearest tenant's definition).
Timing, per message: quiet hours → suppression rules → frequency caps, with priority deciding
bypass.
"""

from datetime import datetime, time, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apps.messaging.models import Priority
from apps.policy.models import Cap, Category, Kind, Preference

if TYPE_CHECKING:
    from apps.policy.selectors import PreferenceRow


class PolicyReason(str):
    """Why policy (not a missing address or provider) rules a channel out; a message every
    channel of which is ruled out this way is suppressed rather than failed."""


def channel_blocked(*, category: Category, channel: str, suppressed: bool,
                    preference: "Preference | PreferenceRow | None") -> PolicyReason | None:
    """None if policy lets `category` go out on `channel`, else why not, in words."""
    if suppressed:
        return PolicyReason(f"the {channel} address is on the suppression list")
    if category.required:
        return None  # recipients cannot opt out of required categories
    if (category.kind == Kind.COMMERCIAL and preference is not None
            and preference.commercial_unsubscribed_at is not None):
        return PolicyReason("the recipient unsubscribed from commercial messages")
    choice = preference.channels.get(category.key, {}).get(channel) if preference is not None else None
    if choice is False:
        return PolicyReason(f"the recipient muted {channel} for {category.key}")
    if choice is None and channel in category.channels_off:
        return PolicyReason(f"{channel} is off by default for {category.key}")
    return None


def quiet_hours_end(*, now: datetime, start: time, end: time, timezone: str) -> datetime | None:
    """When the quiet hours `start`–`end` (local times in `timezone`, possibly across midnight)
    that `now` falls in end; None if `now` is outside them."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    clock_time = local.time().replace(tzinfo=None)
    if start < end:
        inside, end_date = start <= clock_time < end, local.date()
    else:  # e.g. 21:00–08:00
        inside = clock_time >= start or clock_time < end
        end_date = local.date() + timedelta(days=1) if clock_time >= start else local.date()
    if not inside:
        return None
    # A wall time that does not exist (skipped by a DST change) maps to the instant after the gap.
    return datetime.combine(end_date, end, tzinfo=zone).astimezone(ZoneInfo("UTC"))


def bypasses_quiet_hours(*, category: Category, priority: str) -> bool:
    return priority == Priority.CRITICAL or category.kind == Kind.TRANSACTIONAL


def bypasses_caps(*, category: Category, priority: str, exempt_transactional: bool) -> bool:
    return priority == Priority.CRITICAL or (exempt_transactional and category.kind == Kind.TRANSACTIONAL)


def cap_applies(*, cap: Cap, category: Category, channel: str, priority: str,
                exempt_transactional: bool) -> bool:
    """Whether `cap` holds a message of `category` routed to `channel`."""
    if bypasses_caps(category=category, priority=priority, exempt_transactional=exempt_transactional):
        return False
    if cap.scope == Cap.Scope.CHANNEL:
        return cap.key == channel
    if cap.scope == Cap.Scope.CATEGORY:
        return cap.key == category.key
    return True


def cap_verdict(*, reached: list[tuple[Cap, datetime]], priority: str) -> tuple[Cap, str, datetime] | None:
    """Of the caps reached, each with when its window next has room: the one that decides, its
    action for `priority` and that time. A drop wins over a wait; among waits, the one that frees
    up last (waiting for an earlier one would only meet the later one again). None: no cap reached."""
    if not reached:
        return None
    drops = [(cap, until) for cap, until in reached if cap.action_for(priority) == Cap.Action.DROP]
    cap, until = drops[0] if drops else max(reached, key=lambda pair: pair[1])
    return cap, cap.action_for(priority), until


def local_time_words(moment: datetime, timezone: str) -> str:
    """`08:00 Europe/Berlin`: how the timeline states a time to support staff."""
    return f"{moment.astimezone(ZoneInfo(timezone)):%H:%M} {timezone}"


def rule_applies(*, rule, category: Category, priority: str) -> bool:
    """Whether a suppression rule holds messages of `category` (critical ones always pass)."""
    return priority != Priority.CRITICAL and category.kind in rule.kinds
