"""The segment admin: validation naming the field, size and sample, the recompute button and its
progress view, roles and tenant scoping."""

import json

import pytest
from django.urls import reverse

from apps.recipients.tests.factories import RecipientFactory
from apps.segments import services
from apps.segments.models import Segment
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db
PRO = {"all": [{"field": "recipient.attributes.plan", "op": "eq", "value": "pro"},
               {"field": "recipient.attributes.country", "op": "in", "value": ["DE", "AT"]}]}


@pytest.fixture
def tenant():
    return TenantFactory(name="Alice Co", slug="alice")


@pytest.fixture
def marketer(client, tenant):
    user = staff_member(tenant=tenant, role=Role.MARKETER, username="mara", email="mara@alice.example")
    client.force_login(user)
    return user


def form(tenant, conditions, **fields):
    return {"tenant": tenant.pk, "key": "pro-dach", "name": "Pro in DACH", "description": "",
            "conditions": json.dumps(conditions), **fields}


def test_errors_name_the_condition_and_nothing_is_saved(client, marketer, tenant):
    bad = {"all": [{"field": "recipient.attributes.plan", "op": "eq", "value": "pro"},
                   {"field": "trigger.properties.x", "op": "exists"}]}
    response = client.post(reverse("admin:segments_segment_add"), form(tenant, bad))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors["conditions"]
    expected = "conditions.all[1].field: A segment's fields start with recipient."
    assert any(e.startswith(expected) for e in errors)
    assert not Segment.objects.exists()


def test_a_marketer_builds_a_segment_and_sees_its_size_and_members(client, marketer, tenant):
    ada = RecipientFactory(tenant=tenant, external_id="ada", attributes={"plan": "pro", "country": "AT"})
    RecipientFactory(tenant=tenant, attributes={"plan": "pro", "country": "FR"})
    RecipientFactory(attributes={"plan": "pro", "country": "AT"})  # another tenant's
    response = client.post(reverse("admin:segments_segment_add"), form(tenant, PRO))
    assert response.status_code == 302
    segment = Segment.objects.get()
    assert segment.status == Segment.Status.COMPUTING  # the recompute task is queued after commit
    progress = reverse("admin:segments_segment_progress", args=[segment.pk])
    assert client.get(progress).json() == {"status": "computing", "done": 0, "total": 0, "size": 0}

    services.segment_recompute(segment)  # what the task does
    assert client.get(progress).json() == {"status": "ready", "done": 2, "total": 2, "size": 1}
    page = client.get(reverse("admin:segments_segment_change", args=[segment.pk])).content.decode()
    assert reverse("admin:recipients_recipient_change", args=[ada.pk]) in page
    listing = client.get(reverse("admin:segments_segment_changelist")).content.decode()
    assert "pro-dach" in listing and '<td class="field-size">1</td>' in listing

    response = client.post(reverse("admin:segments_segment_change", args=[segment.pk]),
                           form(tenant, PRO, _recompute="1"))
    assert response.status_code == 302
    segment.refresh_from_db()
    assert segment.status == Segment.Status.COMPUTING


def test_support_reads_and_other_tenants_see_nothing(client, tenant):
    segment = services.segment_save(segment=Segment(tenant=tenant, key="all", name="All"))
    support = staff_member(tenant=tenant, role=Role.SUPPORT, username="sue")
    client.force_login(support)
    change = reverse("admin:segments_segment_change", args=[segment.pk])
    assert client.get(change).status_code == 200
    assert client.post(change, form(tenant, {})).status_code == 403
    charlie = staff_member(tenant=TenantFactory(), role=Role.MARKETER, username="charlie")
    client.force_login(charlie)
    assert client.get(change).status_code == 302  # the admin's "does not exist" redirect
    assert client.get(reverse("admin:segments_segment_progress", args=[segment.pk])).status_code == 404


@pytest.mark.parametrize("conditions,error", [
    ('{"not": ' * 40 + "{}" + "}" * 40, "deeper than 32 levels"),
    ('{"not": ' * 5000 + "{}" + "}" * 5000, "deeper than 32 levels"),
    ('{"all": [{"field": "recipient.attributes.n", "op": "gt", "value": NaN}]}', "NaN is not a JSON number"),
])
def test_json_the_database_or_python_cannot_take_is_a_form_error(client, marketer, tenant, conditions, error):
    response = client.post(reverse("admin:segments_segment_add"),
                           {**form(tenant, {}), "conditions": conditions})
    assert response.status_code == 200
    assert error in str(response.context["adminform"].form.errors["conditions"])
    assert not Segment.objects.exists()
