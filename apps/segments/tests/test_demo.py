from io import StringIO

import pytest
from django.core.management import call_command

from apps.recipients.models import Recipient
from apps.segments.models import Segment
from apps.segments.selectors import segment_member_ids
from apps.tenants.models import Tenant

pytestmark = pytest.mark.django_db


def test_seed_demo_adds_two_computed_segments_once():
    for _ in range(2):
        out = StringIO()
        call_command("seed_demo", stdout=out)
    assert "all-recipients (3 members), pro-users (1 members)" in out.getvalue()
    acme = Tenant.objects.get(slug="acme")
    segments = {s.key: s for s in Segment.objects.filter(tenant=acme)}
    assert set(segments) == {"all-recipients", "pro-users"}
    assert all(s.status == "ready" and s.computed_at for s in segments.values())
    assert segment_member_ids(segments["all-recipients"]) == sorted(
        Recipient.objects.filter(tenant=acme).values_list("pk", flat=True))
    ada = Recipient.objects.get(tenant=acme, external_id="user-1")
    assert segment_member_ids(segments["pro-users"]) == [ada.pk]
