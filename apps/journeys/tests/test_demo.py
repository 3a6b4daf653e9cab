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


def test_seed_demo_adds_three_active_journeys_once_and_welcome_runs(clock_travel):
    for _ in range(2):
        call_command("seed_demo", "--json", stdout=StringIO())
    acme = Tenant.objects.get(slug="acme")
    assert dict(Journey.objects.filter(tenant=acme).values_list("key", "status")) == {
        "welcome": "active", "abandoned-cart": "active", "comment-digest": "active"}
    assert JourneyVersion.objects.count() == 3

    recipient = Recipient.objects.filter(tenant=acme).exclude(phone="").first()
    events_record(tenant=acme, source=Event.Source.API, drafts=[EventDraft(name="signup",
                                                                          recipient_id=recipient.pk)])
    events_process()
    clock_travel(seconds=86400)
    tick()
    # No project.created: the nudge by SMS after the welcome email.
    assert list(Message.objects.filter(recipient=recipient).order_by("id").values_list(
        "template_key", "channels")) == [("welcome", ["email"]), ("nudge", ["sms"])]


def test_the_demo_comment_digest_sends_one_email_listing_a_threads_comments(clock_travel):
    from apps.content.services import template_render_for_send

    call_command("seed_demo", "--json", stdout=StringIO())
    acme = Tenant.objects.get(slug="acme")
    recipient = Recipient.objects.filter(tenant=acme).exclude(email="").first()
    comments = [("Grace", "Looks good"), ("Linus", "Ship it"), ("Grace", "One more thing")]
    for author, text in comments:
        events_record(tenant=acme, source=Event.Source.API, drafts=[EventDraft(
            name="comment.created", recipient_id=recipient.pk,
            properties={"thread_id": 42, "thread_title": "Launch plan", "author": author, "text": text})])
        events_process()
        clock_travel(seconds=60)
    clock_travel(seconds=10 * 60)
    tick()
    [digest] = Message.objects.filter(recipient=recipient, template_key="comment-digest")
    # (Rendered as the pipeline renders it: sending may wait for the demo's quiet hours.)
    _, rendered = template_render_for_send(tenant=acme, key="comment-digest", channels=["email"],
                                           recipient={}, data=digest.data, message={})
    assert rendered["email"]["subject"] == "3 new comments on Launch plan"
    assert rendered["email"]["preheader"] == "Grace, Linus"
    for author, text in comments:
        assert f"{author}: {text}" in rendered["email"]["text"]
