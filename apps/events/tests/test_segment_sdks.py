"""The official Segment and RudderStack Python SDKs, unmodified, against a live server."""

import pytest
import rudderstack.analytics.client as rudder
from segment.analytics.client import Client as SegmentClient

from apps.events.models import Event
from apps.events.tests.factories import api_key_for
from apps.recipients.models import Recipient, RecipientAlias
from apps.tenants.models import ApiKey
from apps.tenants.tests.factories import TenantFactory

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

SDKS = {"segment": SegmentClient, "rudderstack": rudder.Client}


@pytest.fixture(params=[(sdk, gzip) for sdk in SDKS for gzip in (False, True)],
                ids=lambda p: f"{p[0]}-{'gzip' if p[1] else 'plain'}")
def sdk(request, live_server):
    name, gzip = request.param
    tenant = TenantFactory()
    errors = []
    client = SDKS[name](api_key_for(tenant, kind=ApiKey.Kind.WRITE), host=live_server.url,
                        sync_mode=True, gzip=gzip, max_retries=0,
                        on_error=lambda exc, batch: errors.append(exc))
    client.tenant, client.errors = tenant, errors
    yield client
    assert not errors, errors


def test_identify_and_track_land_with_recipient_traits_and_properties(sdk):
    sdk.identify("user-42", {"email": "Ada@Example.com", "phone": "+14155550101", "plan": "pro"},
                 context={"timezone": "Europe/Berlin", "locale": "de-DE"})
    sdk.track("user-42", "Order Completed", {"order_id": "A-1", "total": 42.5},
              context={"ip": "203.0.113.9"})
    sdk.page("user-42", "Docs", "Getting started", {"url": "https://example.com/docs"})
    sdk.screen("user-42", "App", "Home")
    sdk.group("user-42", "org-7", {"name": "Acme"})

    recipient = Recipient.objects.get(tenant=sdk.tenant, external_id="user-42")
    assert (recipient.email, recipient.phone, recipient.timezone, recipient.locale) == (
        "ada@example.com", "+14155550101", "Europe/Berlin", "de-DE")
    assert recipient.attributes == {"plan": "pro"}
    events = {e.kind: e for e in Event.objects.filter(tenant=sdk.tenant, recipient=recipient)}
    assert set(events) == {"identify", "track", "page", "screen", "group"}
    track = events["track"]
    assert (track.name, track.properties, track.source) == (
        "Order Completed", {"order_id": "A-1", "total": 42.5}, "segment")
    assert track.context["ip"] == "203.0.113.9" and "library" in track.context
    assert events["page"].properties["name"] == "Getting started"
    assert events["group"].properties["group_id"] == "org-7"


def test_a_replayed_message_id_creates_no_second_event(sdk):
    for _ in range(2):
        sdk.track("user-1", "Signed Up", message_id="fixed-message-id")
    assert Event.objects.filter(tenant=sdk.tenant, message_id="fixed-message-id").count() == 1


def test_anonymous_activity_merges_into_the_identified_user(sdk):
    sdk.track(anonymous_id="anon-9", event="Viewed Pricing")
    anonymous = RecipientAlias.objects.get(tenant=sdk.tenant, alias="anon-9").recipient
    assert anonymous.external_id is None
    sdk.identify("user-9", {"email": "nine@example.com"}, anonymous_id="anon-9")
    known = Recipient.objects.get(tenant=sdk.tenant, external_id="user-9")
    anonymous.refresh_from_db()
    assert anonymous.merged_into == known
    assert set(Event.objects.filter(recipient=known).values_list("name", flat=True)) == {
        "Viewed Pricing", "identify"}
    sdk.track(anonymous_id="anon-9", event="Came Back")  # the alias now leads to the known user
    assert Event.objects.get(tenant=sdk.tenant, name="Came Back").recipient == known


def test_alias_call_merges_the_previous_id(sdk):
    sdk.track("old-id", "Did Something")
    sdk.alias("old-id", "new-id")
    new = Recipient.objects.get(tenant=sdk.tenant, external_id="new-id")
    assert Recipient.objects.get(tenant=sdk.tenant, external_id="old-id").merged_into == new
    assert Event.objects.get(tenant=sdk.tenant, name="Did Something").recipient == new
