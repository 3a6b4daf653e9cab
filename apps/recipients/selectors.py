from apps.core.errors import NotFound
from apps.recipients.models import Recipient


def recipient_get(*, tenant, external_id: str) -> Recipient:
    """The tenant's recipient with this external id (following a merge), or NotFound."""
    recipient = Recipient.objects.filter(tenant=tenant, external_id=external_id).first()
    if recipient is None:
        raise NotFound(f"No recipient with external_id {external_id!r}.")
    if recipient.merged_into_id:
        recipient = Recipient.objects.get(tenant=tenant, pk=recipient.merged_into_id)
    return recipient
