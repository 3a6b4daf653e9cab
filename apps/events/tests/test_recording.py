"""Storing events: recipients named by id or by external id (found by the INSERT itself on PostgreSQL)."""

import pytest

from apps.events.models import Event
from apps.events.services import EventDraft, events_record
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db


def test_drafts_named_by_id_or_external_id_land_on_their_recipients():
    tenant = TenantFactory()
    ada = RecipientFactory(tenant=tenant, external_id="ada")
    ids = events_record(tenant=tenant, source=Event.Source.API, drafts=[
        EventDraft(name="by-id", recipient_id=ada.pk),
        EventDraft(name="by-external-id", recipient_id=None, external_id="ada"),
        EventDraft(name="new", recipient_id=None, external_id="grace")])
    stored = {e.name: e.recipient.external_id for e in Event.objects.filter(pk__in=ids)}
    assert stored == {"by-id": "ada", "by-external-id": "ada", "new": "grace"}
