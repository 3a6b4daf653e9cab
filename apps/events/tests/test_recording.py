"""Storing events: the PostgreSQL INSERT's own recipient lookup and its prepared statement."""

import pytest
from django.db import connection

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


@pytest.mark.skipif(connection.vendor != "postgresql", reason="prepared statements are PostgreSQL's")
def test_the_insert_is_prepared_once_per_connection():
    tenant = TenantFactory()
    for n in range(3):
        events_record(tenant=tenant, source=Event.Source.API,
                      drafts=[EventDraft(name=f"e{n}", recipient_id=None, external_id="ada")])
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        prepared = [row[0] for row in cursor.fetchall()]
    assert [s for s in prepared if "INSERT INTO events_event" in s], prepared
    assert Event.objects.filter(tenant=tenant).count() == 3
