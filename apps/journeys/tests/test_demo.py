from io import StringIO

import pytest
from django.core.management import call_command

from apps.core.services import tick
from apps.events.models import Event
from apps.events.services import EventDraft, events_process, events_record
from apps.journeys.models import Journey, JourneyVersion
from apps.messaging.models import Message
from apps.recipients.models import Recipient
from apps.tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_seed_demo_adds_two_active_journeys_once_and_welcome_runs(clock_travel):
    for _ in range(2):
        call_command("seed_demo", "--json", stdout=StringIO())
    acme = Tenant.objects.get(slug="acme")
    assert dict(Journey.objects.filter(tenant=acme).values_list("key", "status")) == {
        "welcome": "active", "abandoned-cart": "active"}
    assert JourneyVersion.objects.count() == 2

    recipient = Recipient.objects.filter(tenant=acme).exclude(phone="").first()
    events_record(tenant=acme, source=Event.Source.API, drafts=[EventDraft(name="signup",
                                                                          recipient_id=recipient.pk)])
    events_process()
    clock_travel(seconds=86400)
    tick()
    # No project.created: the nudge by SMS after the welcome email.
    assert list(Message.objects.filter(recipient=recipient).order_by("id").values_list(
        "template_key", "channels")) == [("welcome", ["email"]), ("nudge", ["sms"])]
