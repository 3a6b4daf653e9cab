from django.utils import timezone

from apps.content.tests.factories import TemplateFactory, published
from apps.recipients.models import Recipient
from apps.segments.models import Segment, SegmentMembership


def published_template(tenant, key="news", **fields):
    """A published template with email and SMS content."""
    template = TemplateFactory(tenant=tenant, key=key, email_subject="News for {{ recipient.external_id }}",
                               email_body="<mj-text>Hello {{ recipient.external_id }}</mj-text>",
                               sms_text="News for {{ recipient.external_id }}", **fields)
    published(template)
    return template


def segment_with(tenant, recipients, key="everyone") -> Segment:
    """A segment whose members are `recipients` (memberships written directly, as the segment
    evaluation would)."""
    segment = Segment.objects.create(tenant=tenant, key=key, name=key.title())
    SegmentMembership.objects.bulk_create(
        [SegmentMembership(segment=segment, recipient=r, joined_at=timezone.now()) for r in recipients],
        batch_size=5000)
    return segment


def many_recipients(tenant, count: int, prefix="u", **fields) -> list[Recipient]:
    now = timezone.now()
    Recipient.objects.bulk_create([
        Recipient(tenant=tenant, external_id=f"{prefix}{n}", email=f"{prefix}{n}@example.com",
                  created_at=now, updated_at=now, **fields) for n in range(count)], batch_size=5000)
    return list(Recipient.objects.filter(tenant=tenant, external_id__startswith=prefix).order_by("id"))
