"""`Idempotency-Key` for POSTs: the first successful response is kept 24 h and replayed.

https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/
The in-flight row is committed on its own, before the request's work starts, so a concurrent
retry sees it (409); the response is stored in the same transaction as the work, so a replay
never promises something that was rolled back.
"""

from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, transaction

from apps.core import clock
from apps.core.errors import Conflict, SignalboxError
from apps.events.models import IdempotencyKey

TTL = timedelta(hours=24)
# An in-flight row this old belongs to a request that died (worker killed); a retry takes over.
ABANDONED_AFTER = timedelta(seconds=60)


class KeyReuse(SignalboxError):
    status_code = 422
    error_type = "idempotency_key_reused"


@dataclass(frozen=True)
class Replay:
    status: int
    body: object


def idempotency_begin(*, tenant, key: str, request_hash: str) -> IdempotencyKey | Replay:
    """Claim `key` for this request, or return the stored response, or raise 409 / 422."""
    now = clock.now()
    try:
        with transaction.atomic():
            return IdempotencyKey.objects.create(tenant=tenant, key=key, request_hash=request_hash)
    except IntegrityError:
        pass
    record = IdempotencyKey.objects.get(tenant=tenant, key=key)
    if record.created_at < now - TTL:
        record.delete()
        return idempotency_begin(tenant=tenant, key=key, request_hash=request_hash)
    if record.request_hash != request_hash:
        raise KeyReuse("This Idempotency-Key was used with a different request body.",
                       fields={"Idempotency-Key": ["Already used with a different request body."]})
    if record.response_status is not None:
        return Replay(status=record.response_status, body=record.response_body)
    taken_over = IdempotencyKey.objects.filter(
        pk=record.pk, response_status__isnull=True, updated_at__lt=now - ABANDONED_AFTER
    ).update(updated_at=now)
    if taken_over:
        return record
    raise Conflict("A request with this Idempotency-Key is still in progress; retry later.",
                   fields={"Idempotency-Key": ["A request with this key is in progress."]})


def idempotency_finish(*, record: IdempotencyKey, status: int, body: object) -> None:
    """Store the response; call inside the transaction of the request's work."""
    IdempotencyKey.objects.filter(pk=record.pk).update(
        response_status=status, response_body=body, updated_at=clock.now()
    )


def idempotency_abandon(*, record: IdempotencyKey) -> None:
    """The request failed: forget the key so that a corrected retry may use it."""
    IdempotencyKey.objects.filter(pk=record.pk, response_status__isnull=True).delete()


def idempotency_keys_expire() -> int:
    """Tick job: delete keys older than 24 h."""
    deleted, _ = IdempotencyKey.objects.filter(created_at__lt=clock.now() - TTL).delete()
    return deleted
