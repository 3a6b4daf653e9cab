"""Storing events: recipients named by id or by external id (found by the INSERT itself on PostgreSQL)."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

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


@pytest.mark.parametrize("conn_max_age", [0, 60])
def test_lone_events_land_on_their_recipients_prepared_or_not(conn_max_age, monkeypatch):
    """One event alone takes _insert_one's INSERT … SELECT, prepared on a connection kept between
    requests (apps/core/postgresql/prepared.py): each kind twice, the second time EXECUTEd."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", conn_max_age)
    tenant = TenantFactory()
    ada = RecipientFactory(tenant=tenant, external_id="ada")
    RecipientFactory(tenant=tenant, external_id="ada-anonymous", merged_into=ada)
    drafts = [("by-id", ada.pk, None), ("by-external-id", None, "ada"), ("merged", None, "ada-anonymous"),
              ("new", None, "grace")]
    stored = []
    for round_ in range(2):
        with CaptureQueriesContext(connection) as queries:
            for name, recipient_id, external_id in drafts:
                [pk] = events_record(tenant=tenant, source=Event.Source.API, drafts=[EventDraft(
                    name=name, recipient_id=recipient_id, external_id=f"{external_id}{round_ or ''}"
                    if name == "new" else external_id, properties={"n": round_})])
                event = Event.objects.get(pk=pk)
                stored.append((event.name, event.recipient.external_id, event.properties))
        inserts = [sql for sql in (q["sql"] for q in queries)
                   if sql.startswith("EXECUTE") or "INSERT INTO" in sql and "events_event" in sql]
        if connection.vendor == "postgresql" and conn_max_age:
            first_words = {sql.split()[0] for sql in inserts}
            assert first_words == ({"PREPARE", "EXECUTE"} if round_ == 0 else {"EXECUTE"})
        else:
            assert inserts and not any(sql.startswith(("PREPARE", "EXECUTE")) for sql in inserts)
    expected = [("by-id", "ada"), ("by-external-id", "ada"), ("merged", "ada"), ("new", "grace"),
                ("by-id", "ada"), ("by-external-id", "ada"), ("merged", "ada"), ("new", "grace1")]
    assert stored == [(name, who, {"n": i // 4}) for i, (name, who) in enumerate(expected)]
