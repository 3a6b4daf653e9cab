from apps.content.tests.factories import TemplateFactory, published
from apps.journeys import services
from apps.journeys.models import Journey

ABANDONED_CART = {
    "trigger": {"event": "cart.abandoned"},
    "reentry": {"rule": "one_at_a_time"},
    "exit_events": [{"event": "order.completed"}],
    "goal": {"event": "order.completed", "within": "7d"},
    "steps": [
        {"id": "later", "type": "delay", "duration": "45m", "next": "sms"},
        {"id": "sms", "type": "send", "template": "cart-reminder", "channels": ["sms"], "next": "morning"},
        {"id": "morning", "type": "delay", "until_time": "09:00", "next": "mail"},
        {"id": "mail", "type": "send", "template": "cart-mail", "channels": ["email"]},
    ],
}


def templates(tenant, *keys: str) -> None:
    for key in keys:
        published(TemplateFactory(tenant=tenant, key=key))


def active_journey(tenant, definition: dict, key: str = "journey") -> Journey:
    journey = Journey.objects.create(tenant=tenant, key=key, name=key.title(), definition=definition)
    return services.journey_activate(journey=journey)
