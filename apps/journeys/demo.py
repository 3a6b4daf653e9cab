"""The demo journeys seed_demo adds (their templates come from apps/content/demo.py)."""

from apps.journeys import services
from apps.journeys.models import Journey

WELCOME = {
    "trigger": {"event": "signup"},
    "reentry": {"rule": "once"},
    "goal": {"event": "project.shared", "within": "14d"},
    "steps": [
        {"id": "welcome", "type": "send", "template": "welcome", "channels": ["email"], "next": "one-day"},
        {"id": "one-day", "type": "delay", "duration": "1d", "next": "has-project"},
        {"id": "has-project", "type": "branch", "default": "nudge", "paths": [
            {"conditions": {"field": "history.project.created", "op": "exists"}, "next": "tips"}]},
        {"id": "nudge", "type": "send", "template": "nudge", "channels": ["sms"]},
        {"id": "tips", "type": "send", "template": "tips", "channels": ["email"]},
    ],
}
ABANDONED_CART = {
    "trigger": {"event": "cart.abandoned"},
    "reentry": {"rule": "one_at_a_time"},
    "exit_events": [{"event": "order.completed"}],
    "goal": {"event": "order.completed", "within": "7d"},
    "steps": [
        {"id": "45-minutes", "type": "delay", "duration": "45m", "next": "sms"},
        {"id": "sms", "type": "send", "template": "cart-reminder", "channels": ["sms"], "next": "morning"},
        {"id": "morning", "type": "delay", "until_time": "09:00", "next": "email"},
        {"id": "email", "type": "send", "template": "cart-reminder", "channels": ["email"]},
    ],
}
# Comments on one thread within 10 minutes make one email (later comments join the open digest).
COMMENT_DIGEST = {
    "trigger": {"event": "comment.created"},
    "reentry": {"rule": "every_time"},
    "steps": [
        {"id": "collect", "type": "digest", "key": "{{ data.thread_id }}", "window": "10m",
         "next": "email"},
        {"id": "email", "type": "send", "template": "comment-digest", "channels": ["email"]},
    ],
}
JOURNEYS = {"welcome": ("Welcome", WELCOME), "abandoned-cart": ("Abandoned cart", ABANDONED_CART),
            "comment-digest": ("Comment digest", COMMENT_DIGEST)}


def demo_journeys_seed(*, tenant) -> list[str]:
    """Create and activate the demo journeys (once: a journey edited since is left alone)."""
    for key, (name, definition) in JOURNEYS.items():
        journey, created = Journey.objects.get_or_create(
            tenant=tenant, key=key, defaults={"name": name, "definition": definition})
        if created:
            services.journey_activate(journey=journey)
    return list(JOURNEYS)
