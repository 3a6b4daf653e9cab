"""The broadcast admin: creating with a segment or a CSV (errors name rows), the buttons, the
progress endpoint, tenant scoping."""

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from apps.broadcasts import services
from apps.broadcasts.models import Broadcast
from apps.broadcasts.tests.factories import many_recipients, published_template, segment_with
from apps.messaging.models import Message
from apps.segments.models import Segment
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db


@pytest.fixture
def tenant():
    tenant = TenantFactory(name="Alice Co", slug="alice")
    published_template(tenant, key="news")
    segment_with(tenant, many_recipients(tenant, 4), key="everyone")
    return tenant


@pytest.fixture
def marketer(client, tenant):
    user = staff_member(tenant=tenant, role=Role.MARKETER, username="mara", email="mara@alice.example")
    client.force_login(user)
    return user


def form(tenant, **fields):
    return {"tenant": tenant.pk, "name": "November news", "template_key": "news", "data": "{}", **fields}


def csv_file(text: str):
    return SimpleUploadedFile("list.csv", text.encode(), content_type="text/csv")


def test_a_marketer_creates_starts_and_follows_a_segment_broadcast(client, marketer, tenant):
    segment = Segment.objects.get(key="everyone")
    response = client.post(reverse("admin:broadcasts_broadcast_add"), form(tenant, segment=segment.pk))
    assert response.status_code == 302, response.context["adminform"].form.errors
    broadcast = Broadcast.objects.get()
    assert (broadcast.status, broadcast.created_by, broadcast.channels) == (
        "draft", marketer, ["email", "sms"])
    change = reverse("admin:broadcasts_broadcast_change", args=[broadcast.pk])
    page = client.get(change).content.decode()
    assert 'name="_start"' in page and "sb-broadcast-progress" in page

    client.post(change, {"_start": "Start"})
    broadcast.refresh_from_db()
    assert (broadcast.status, broadcast.targeted) == ("sending", 4)
    services.broadcast_fan_out(broadcast_id=broadcast.pk)
    cache.clear()  # the page load above cached the counts for a few seconds
    progress = client.get(reverse("admin:broadcasts_broadcast_progress", args=[broadcast.pk])).json()
    assert (progress["targeted"], progress["queued"], progress["percent"]) == (4, 4, 0)
    assert "queued 4" in progress["text"]
    # The link to the broadcast's messages lists them.
    listing = client.get(reverse("admin:messaging_message_changelist") + f"?broadcast={broadcast.pk}")
    assert listing.status_code == 200 and len(listing.context["cl"].result_list) == 4

    client.post(change, {"_pause": "Pause"})
    assert Broadcast.objects.get().status == "paused"
    client.post(change, {"_resume": "Resume"})
    client.post(change, {"_cancel": "Cancel the broadcast"})
    assert Broadcast.objects.get().status == "cancelled"
    assert set(Message.objects.values_list("status", flat=True)) == {"cancelled"}


def test_a_csv_list_with_bad_rows_and_unknown_ids_is_refused_naming_them(client, marketer, tenant):
    response = client.post(reverse("admin:broadcasts_broadcast_add"),
                           form(tenant, recipients_csv=csv_file("external_id\nu1\n\nu2\n")))
    assert response.context["adminform"].form.errors["recipients_csv"] == [
        "Row 3: no external id in the first column."]
    response = client.post(reverse("admin:broadcasts_broadcast_add"),
                           form(tenant, recipients_csv=csv_file("external_id\nu1\nghost\nu3,extra\n")))
    assert response.context["adminform"].form.errors["recipients_csv"] == [
        "Row 3: No recipient has the external id 'ghost'.", "1 unknown external id(s)."]
    response = client.post(reverse("admin:broadcasts_broadcast_add"),
                           form(tenant, template_key="nope", recipients_csv=csv_file("u1\n")))
    assert "No published template" in response.context["adminform"].form.errors["template_key"][0]
    assert not Broadcast.objects.exists()

    response = client.post(reverse("admin:broadcasts_broadcast_add"),
                           form(tenant, recipients_csv=csv_file("external_id\nu1\nu3,extra\n")))
    assert response.status_code == 302
    broadcast = Broadcast.objects.get()
    assert sorted(broadcast.recipients.values_list("recipient__external_id", flat=True)) == ["u1", "u3"]


def test_another_tenants_broadcasts_are_out_of_reach(client, marketer):
    other = TenantFactory()
    published_template(other, key="news")
    segment_with(other, many_recipients(other, 1, prefix="o"), key="theirs")
    theirs = services.broadcast_create(tenant=other, name="Theirs", template_key="news", segment_key="theirs")
    assert client.get(reverse("admin:broadcasts_broadcast_change", args=[theirs.pk])).status_code == 302
    assert client.get(reverse("admin:broadcasts_broadcast_progress", args=[theirs.pk])).status_code == 404
    response = client.post(reverse("admin:broadcasts_broadcast_add"), form(other, segment=theirs.segment_id))
    assert "tenant" in response.context["adminform"].form.errors
