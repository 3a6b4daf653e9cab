"""The delivery pipeline: one order for every message, plain Python (no Celery).

claim → eligibility → route → timing → render → send → record

Messages go through it in batches (`messages_send`): one claim for the batch, every provider call
of the batch in parallel threads (sends are I/O-bound), and one write for all accepted sends.
Anything unusual (expiry, failover to another channel, retries) continues one message at a time
in `deliver()`, the same code a batch of one runs. Templates plug into `render`; Policy
(apps.policy, docs/policy.md) adds its checks to `eligibility` and `timing`.
"""

import json
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q

from apps.content.services import content_render_inline, recipient_profile, template_render_for_send
from apps.core import clock
from apps.core.errors import InvalidInput, NotFound
from apps.delivery.breaker import Breakers
from apps.delivery.providers.base import Provider, ProviderError, ProviderResult, Rendered
from apps.delivery.providers.registry import provider_for
from apps.delivery.selectors import ProviderLookup
from apps.messaging.models import TRANSITIONS, Attempt, Channel, Message, Status, StatusEvent
from apps.messaging.services import message_note, message_transition
from apps.policy.evaluation import PolicyReason
from apps.policy.services import PolicyBatch

# Where each channel's address comes from; a channel without one is not eligible.
ADDRESS = {
    Channel.EMAIL: lambda r: r.email,
    Channel.SMS: lambda r: r.phone,
    Channel.PUSH: lambda r: "",  # push tokens arrive with the push providers
    Channel.CHAT: lambda r: r.external_id or "",
    Channel.WEBHOOK: lambda r: r.external_id or "",
    Channel.INBOX: lambda r: r.external_id or "",
}


DOWN = "every provider is down (circuit open)"


@dataclass(frozen=True)
class Outcome:
    status: str
    retry_in: float | None = None  # seconds until the next attempt, when one is scheduled


@dataclass
class Call:
    """One provider call, made without touching the database (it may run in a thread)."""

    provider: Provider
    started: datetime
    duration_ms: int
    result: ProviderResult | None = None
    error: ProviderError | None = None


@dataclass
class Calls:
    """A channel's provider calls for one message, in order, and what they came to."""

    made: list[Call] = field(default_factory=list)
    accepted: Call | None = None
    ambiguous: Call | None = None  # retry this provider, never another
    retry_after: float | None = None  # a transient failure: when to try again


def message_send(*, message_id: int) -> Outcome | None:
    """One message through the pipeline. None if another worker has it (or it is not due)."""
    return messages_send(message_ids=[message_id]).get(message_id)


def messages_send(*, message_ids: list[int]) -> dict[int, Outcome]:
    """Queued messages through the pipeline together; message id → outcome, for those this
    worker claimed."""
    messages = claim_many(message_ids)
    if not messages:
        return {}
    lookup = ProviderLookup()
    providers = {message.pk: {} if message.test_mode else {
        channel: lookup(tenant=message.tenant, channel=channel) for channel in message.channels}
        for message in messages}
    breakers = Breakers((message.tenant_id, config.pk) for message in messages
                        for configs in providers[message.pk].values() for config in configs)
    policy = PolicyBatch(messages, ADDRESS)  # may hold the recipients' locks until timing_many
    try:
        choices = {m.pk: eligibility(m, providers[m.pk], breakers, policy) for m in messages}
        channels = {m.pk: route(m, choices[m.pk]) for m in messages}
        # timing (quiet hours, rules, caps) for the batch at once: one transaction under the recipients' locks
        held = policy.timing_many([(m, channels[m.pk]) for m in messages
                                   if channels[m.pk] is not None and not expired(m)])
    finally:
        policy.close()
    outcomes = {pk: Outcome(status) for pk, status in held.items() if status is not None}
    ready = []
    for message in messages:
        if message.pk in outcomes:
            continue
        channel, decisions = channels[message.pk], choices[message.pk]
        # The common path: not expired, and the channel is the one requested (or tried) first.
        simple = not expired(message) and channel == (message.channel or message.channels[0])
        rendered = try_render(message, channel, decisions, policy) if simple else None
        if rendered is None:  # the uncommon paths
            outcomes[message.pk] = deliver(message, providers[message.pk], decisions, breakers, policy=policy,
                                           timed=channel)
        else:
            ready.append((message, decisions, rendered))

    def call(item):
        message, _, rendered = item
        return call_providers(message, rendered, providers[message.pk].get(rendered.channel, []), breakers)

    calls = in_parallel(call, ready)
    outcomes |= record_accepted([(message, rendered, c) for (message, _, rendered), c
                                 in zip(ready, calls, strict=True) if c.accepted])
    for (message, decisions, rendered), c in zip(ready, calls, strict=True):
        if not c.accepted:  # failover to another channel, or a retry: one by one
            outcomes[message.pk] = deliver(message, providers[message.pk], decisions, breakers,
                                           first=(rendered, c), policy=policy, timed=rendered.channel)
    return outcomes


def deliver(message: Message, providers: dict[str, list], decisions: dict[str, str],
            breakers: Breakers, first: tuple[Rendered, Calls] | None = None,
            policy: PolicyBatch | None = None, timed: str | None = None) -> Outcome:
    """The rest of the pipeline for one claimed message. `first`: the calls already made on the
    channel `route` picks first (expiry was checked before they were made). `timed`: the channel
    policy's timing (caps) was decided for; any other channel this message moves on to is
    decided again, under the recipient's lock, before it is sent there."""
    if first is None and expired(message):
        message_transition(message=message, to=Status.EXPIRED, reason_code="expired",
                           reason=f"Not sent by its expiry time {message.expires_at.isoformat()}.")
        return Outcome(Status.EXPIRED)
    while True:
        channel = route(message, decisions)
        if channel is None and DOWN in decisions.values():
            return schedule_retry(message, settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS)
        blocked = {c: d for c, d in decisions.items() if isinstance(d, PolicyReason)}
        if channel is None and blocked:
            message_transition(message=message, to=Status.SUPPRESSED, reason_code="policy",
                               reason="suppressed: " + "; ".join(f"{c}: {d}" for c, d in blocked.items()),
                               detail={"channels": decisions})
            return Outcome(Status.SUPPRESSED)
        if channel is None:
            message_transition(message=message, to=Status.FAILED, reason_code="no_eligible_channel",
                               reason="No requested channel can be used.", detail={"channels": decisions})
            return Outcome(Status.FAILED)
        if channel != message.channel:
            skipped = message.channel or message.channels[0]
            if skipped != channel and isinstance(decisions[skipped], PolicyReason):
                message_note(message=message, status=Status.REROUTED, reason_code="policy",
                             reason=f"rerouted: {decisions[skipped]}; sending by {channel}",
                             detail={"from": skipped, "to": channel, "channels": decisions})
            elif skipped != channel:  # the timeline says why the channel before was not used
                message_note(message=message, status=Status.REROUTED, reason_code="channel_failed",
                             reason=f"{skipped}: {decisions[skipped]}; trying {channel}.",
                             detail={"from": skipped, "to": channel, "channels": decisions})
            message.channel = channel
            Message.objects.filter(pk=message.pk).update(channel=channel)
        if policy is not None and channel != timed:  # a failover: that channel's caps hold too
            held = policy.timing(message, channel)
            if held is not None:
                return Outcome(held)
            timed = channel
        if first is not None:
            (rendered, calls), first = first, None
        else:
            rendered = try_render(message, channel, decisions, policy)
            if rendered is None:
                continue  # on to the next channel
            calls = call_providers(message, rendered, providers.get(channel, []), breakers)
        outcome = record(message, rendered, calls)
        if outcome is not None:
            return outcome
        decisions[channel] = "every provider failed permanently"  # on to the next channel


def claim_many(message_ids: list[int]) -> list[Message]:
    """Move due, queued messages to `sending`. Rows are locked with SKIP LOCKED, so of racing
    workers exactly one claims each message."""
    now = clock.now()
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(_CLAIM, {"ids": list(message_ids), "now": now, "queued": Status.QUEUED,
                                    "sending": Status.SENDING})
            claimed = [row[0] for row in cursor.fetchall()]
        # Loaded after the claim, outside its statement: the rows are ours now (status sending).
        return list(Message.objects.select_related("tenant", "recipient").filter(pk__in=claimed)
                    .order_by("pk")) if claimed else []
    with transaction.atomic():
        messages = list(
            Message.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("tenant", "recipient")
            .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
                    pk__in=message_ids, status=Status.QUEUED)
            .order_by("pk")
        )
        if not messages:
            return []
        Message.objects.filter(pk__in=[m.pk for m in messages]).update(
            status=Status.SENDING, updated_at=now, attempts=F("attempts") + 1, next_attempt_at=None)
        StatusEvent.objects.bulk_create([
            StatusEvent(message=m, status=Status.SENDING, reason_code="claimed", created_at=now)
            for m in messages])
    for m in messages:
        m.status, m.updated_at, m.attempts, m.next_attempt_at = Status.SENDING, now, m.attempts + 1, None
    return messages


# PostgreSQL: the claim as one statement committing on its own (a lone message's claim took five
# round trips and three ORM-built statements: a third of its worker CPU). The same steps as the
# ORM path below it: lock (SKIP LOCKED), move to sending, the timeline entry.
_CLAIM = """
    WITH claimed AS (
        SELECT id FROM messaging_message
        WHERE id = ANY(%(ids)s::bigint[]) AND status = %(queued)s
            AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s)
        ORDER BY id FOR UPDATE SKIP LOCKED
    ), moved AS (
        UPDATE messaging_message AS m SET status = %(sending)s, updated_at = %(now)s,
            attempts = m.attempts + 1, next_attempt_at = NULL
        FROM claimed WHERE m.id = claimed.id
        RETURNING m.id
    ), timeline AS (
        INSERT INTO messaging_statusevent (message_id, status, reason_code, reason, detail, created_at)
        SELECT id, %(sending)s, 'claimed', '', '{}'::jsonb, %(now)s FROM moved
    )
    SELECT id FROM moved ORDER BY id
"""


def claim(message_id: int) -> Message | None:
    claimed = claim_many([message_id])
    return claimed[0] if claimed else None


def expired(message: Message) -> bool:
    return message.expires_at is not None and message.expires_at <= clock.now()


def eligibility(message: Message, providers: dict[str, list], breakers: Breakers,
                policy: PolicyBatch | None = None) -> dict[str, str]:
    """Each requested channel → "eligible" or why not (a PolicyReason when policy rules it out)."""
    decisions = {}
    for channel in message.channels:
        configs = providers.get(channel, [])
        if not ADDRESS[channel](message.recipient):
            decisions[channel] = f"the recipient has no {channel} address"
        elif not message.test_mode and not configs:
            decisions[channel] = f"no {channel} provider is configured"
        elif configs and all(breakers.is_open(tenant_id=message.tenant_id, config_id=c.pk) for c in configs):
            decisions[channel] = DOWN
        else:
            decisions[channel] = (policy and policy.channel_blocked(message, channel)) or "eligible"
    return decisions


def route(message: Message, decisions: dict[str, str]) -> str | None:
    """The first eligible channel, not before the one already tried (fallback moves forward)."""
    start = message.channels.index(message.channel) if message.channel in message.channels else 0
    for channel in message.channels[start:]:
        if decisions.get(channel) == "eligible":
            return channel
    return None


def render(message: Message, channel: str, policy: PolicyBatch | None = None) -> Rendered:
    """The content for `channel`: the request's (its Liquid rendered, if it has any), or its
    template's published version rendered now (recorded on the message), with policy's links
    (and List-Unsubscribe headers on commercial email). Raises InvalidInput/NotFound if the
    content cannot be rendered."""
    to = ADDRESS[channel](message.recipient)
    links, headers = policy.links(message, channel) if policy else ({}, {})
    about = {"id": message.pk, "unsubscribe_url": "", "preferences_url": "", **links}
    if not message.template_key:
        content = content_render_inline(
            tenant=message.tenant, channel=channel, fields=message.content.get(channel, {}),
            recipient=recipient_profile(message.recipient), data=message.data, message=about)
        return Rendered(channel=channel, to=to, content=content, headers=headers)
    version, content = template_render_for_send(
        tenant=message.tenant, key=message.template_key, channels=[channel],
        recipient=recipient_profile(message.recipient), data=message.data, message=about)
    message.template_version_id = version.pk
    return Rendered(channel=channel, to=to, content=content[channel], headers=headers)


def try_render(message: Message, channel: str, decisions: dict[str, str],
               policy: PolicyBatch | None = None) -> Rendered | None:
    """render(), or None with the reason in `decisions` (routing then tries the next channel)."""
    try:
        return render(message, channel, policy)
    except (InvalidInput, NotFound) as error:
        decisions[channel] = f"cannot be rendered: {error}"
        return None


def call_providers(message: Message, rendered: Rendered, configs: list, breakers: Breakers) -> Calls:
    """Try the channel's providers in order until one accepts. Touches the cache (breakers),
    never the database, so batches run it in threads."""
    calls = Calls()
    configs = [None] if message.test_mode else list(configs)  # None: the log provider
    if message.provider:  # an ambiguous failure is retried on the same provider, first
        configs.sort(key=lambda c: (c.name if c else "log") != message.provider)
    for config in configs:
        if config is not None and not breakers.allows(tenant_id=message.tenant_id, config_id=config.pk):
            # Open circuit: skip it; if every provider is skipped, try again after the cool-down.
            calls.retry_after = max(calls.retry_after or 0, settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS)
            continue
        provider = provider_for(config)
        started = clock.now()
        try:
            result = provider.send(rendered, idempotency_key=f"msg-{message.pk}")
        except ProviderError as error:
            call = Call(provider, started, _ms_since(started), error=error)
            calls.made.append(call)
            if config is not None and not error.permanent:
                breakers.record(tenant_id=message.tenant_id, config_id=config.pk, ok=False)
            if error.ambiguous:
                calls.ambiguous, calls.retry_after = call, error.retry_after
                break  # never fail over: the first provider may have sent it
            if not error.permanent:
                calls.retry_after = max(calls.retry_after or 0, error.retry_after or 0)
            continue
        calls.accepted = Call(provider, started, _ms_since(started), result=result)
        calls.made.append(calls.accepted)
        if config is not None:
            breakers.record(tenant_id=message.tenant_id, config_id=config.pk, ok=True)
        break
    return calls


def record(message: Message, rendered: Rendered, calls: Calls) -> Outcome | None:
    """Store one message's calls and move it on. None means every provider failed permanently:
    the caller moves on to the next channel."""
    if calls.accepted:
        return record_accepted([(message, rendered, calls)]).get(message.pk, Outcome(Status.SENT))
    Attempt.objects.bulk_create([attempt_row(message, rendered, call) for call in calls.made])
    if calls.ambiguous:
        message.provider = calls.ambiguous.provider.name
    if calls.ambiguous or message.template_version_id:
        Message.objects.filter(pk=message.pk).update(provider=message.provider,
                                                      template_version_id=message.template_version_id)
    elif calls.retry_after is None:
        return None
    return schedule_retry(message, calls.retry_after)


def record_accepted(items: list[tuple[Message, Rendered, Calls]]) -> dict[int, Outcome]:
    """Accepted sends, in one transaction: their attempts and timeline entries in bulk, and the
    messages still `sending` (the sweeper may have taken one) → `sent`."""
    if not items:
        return {}
    now = clock.now()
    for message, rendered, calls in items:
        message.sent_at, message.channel = now, rendered.channel
        message.provider = calls.accepted.provider.name
        message.provider_message_id = calls.accepted.result.provider_message_id
        message.rendered = {"to": rendered.to, **rendered.content}
    attempts = [attempt_row(message, rendered, call)
                for message, rendered, calls in items for call in calls.made]
    messages = [message for message, _, _ in items]
    moved = _store_accepted(messages, attempts, now)
    sent = [message for message in messages if message.pk in moved]
    for message in sent:
        message.status, message.updated_at = Status.SENT, now
    return {message.pk: Outcome(Status.SENT) for message in sent}


# PostgreSQL: one statement, committing on its own, for the whole batch, its per-row values as
# arrays: the messages still `sending` → `sent` with their send fields, every attempt, and a
# timeline entry for each message moved (five round trips and two ORM-built INSERTs before).
_STORE_ACCEPTED = """
    WITH moved AS (
        UPDATE messaging_message AS m SET status = %(sent)s, updated_at = %(now)s, sent_at = %(now)s,
            channel = u.channel, provider = u.provider, provider_message_id = u.pmid,
            rendered = u.rendered::jsonb, template_version_id = u.version
        FROM unnest(%(ids)s::bigint[], %(channel)s::text[], %(provider)s::text[], %(pmid)s::text[],
            %(rendered)s::text[], %(version)s::bigint[]) AS u(id, channel, provider, pmid, rendered, version)
        WHERE m.id = u.id AND m.status = %(sending)s
        RETURNING m.id, m.provider
    ), attempts AS (
        INSERT INTO messaging_attempt (message_id, channel, provider, outcome, request_summary,
            response_code, response_excerpt, error_class, provider_message_id, duration_ms, created_at)
        SELECT message_id, channel, provider, outcome, summary::jsonb, code, excerpt, error, pmid,
            duration, created
        FROM unnest(%(a_message)s::bigint[], %(a_channel)s::text[], %(a_provider)s::text[],
            %(a_outcome)s::text[], %(a_summary)s::text[], %(a_code)s::int[], %(a_excerpt)s::text[],
            %(a_error)s::text[], %(a_pmid)s::text[], %(a_duration)s::int[], %(a_created)s::timestamptz[])
            WITH ORDINALITY AS a(message_id, channel, provider, outcome, summary, code, excerpt, error,
                                 pmid, duration, created, n)
        ORDER BY n
    ), timeline AS (
        INSERT INTO messaging_statusevent (message_id, status, reason_code, reason, detail, created_at)
        SELECT id, %(sent)s, 'accepted_by_provider', 'Accepted by ' || provider || '.', '{}'::jsonb, %(now)s
        FROM moved ORDER BY id
    )
    SELECT id FROM moved
"""


def _store_accepted(messages: list[Message], attempts: list[Attempt], now: datetime) -> set[int]:
    """`sending` → `sent` with each message's send fields, the attempts and the timeline entries of
    the messages that moved; the ids that moved."""
    assert Status.SENT in TRANSITIONS[Status.SENDING]
    if connection.vendor != "postgresql":
        fields = ["channel", "provider", "provider_message_id", "rendered", "template_version_id"]
        with transaction.atomic():
            moved = {m.pk for m in messages if Message.objects.filter(pk=m.pk, status=Status.SENDING).update(
                status=Status.SENT, updated_at=now, sent_at=now, **{f: getattr(m, f) for f in fields})}
            Attempt.objects.bulk_create(attempts)
            StatusEvent.objects.bulk_create([
                StatusEvent(message=m, status=Status.SENT, reason_code="accepted_by_provider",
                            reason=f"Accepted by {m.provider}.", created_at=now)
                for m in messages if m.pk in moved])
        return moved
    with connection.cursor() as cursor:
        cursor.execute(_STORE_ACCEPTED, {
            "sent": Status.SENT, "sending": Status.SENDING, "now": now, "ids": [m.pk for m in messages],
            "channel": [m.channel for m in messages], "provider": [m.provider for m in messages],
            "pmid": [m.provider_message_id for m in messages],
            "rendered": [json.dumps(m.rendered) for m in messages],
            "version": [m.template_version_id for m in messages],
            "a_message": [a.message_id for a in attempts], "a_channel": [a.channel for a in attempts],
            "a_provider": [a.provider for a in attempts], "a_outcome": [a.outcome for a in attempts],
            "a_summary": [json.dumps(a.request_summary) for a in attempts],
            "a_code": [a.response_code for a in attempts],
            "a_excerpt": [a.response_excerpt for a in attempts],
            "a_error": [a.error_class for a in attempts],
            "a_pmid": [a.provider_message_id for a in attempts],
            "a_duration": [a.duration_ms for a in attempts], "a_created": [a.created_at for a in attempts]})
        return {row[0] for row in cursor.fetchall()}


def retry_delay(attempts: int, retry_after: float | None) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones: exponential back-off with full
    jitter, honouring Retry-After; None after the last (SIGNALBOX_MESSAGE_MAX_ATTEMPTS). Journeys'
    webhook steps retry the same way."""
    if attempts >= settings.SIGNALBOX_MESSAGE_MAX_ATTEMPTS:
        return None
    ceiling = min(settings.SIGNALBOX_RETRY_MAX_SECONDS, settings.SIGNALBOX_RETRY_BASE_SECONDS * 2 ** attempts)
    return max(random.uniform(0, ceiling), retry_after or 0)


def schedule_retry(message: Message, retry_after: float | None) -> Outcome:
    """Back off exponentially with full jitter (honouring Retry-After), or fail after the last."""
    delay = retry_delay(message.attempts, retry_after)
    if delay is None:
        message_transition(message=message, to=Status.FAILED, reason_code="attempts_exhausted",
                           reason=f"Failed after {message.attempts} attempts.")
        return Outcome(Status.FAILED)
    message_transition(message=message, to=Status.QUEUED, reason_code="retry_scheduled",
                       reason=f"Attempt {message.attempts} failed; retrying in {delay:.0f} s.",
                       next_attempt_at=clock.now() + timedelta(seconds=delay))
    return Outcome(Status.QUEUED, retry_in=delay)


def attempt_row(message: Message, rendered: Rendered, call: Call) -> Attempt:
    error, result = call.error, call.result
    if error is None:
        outcome = Attempt.Outcome.ACCEPTED
    elif error.ambiguous:
        outcome = Attempt.Outcome.AMBIGUOUS
    else:
        outcome = Attempt.Outcome.PERMANENT if error.permanent else Attempt.Outcome.RETRYABLE
    source = result or error
    return Attempt(
        message=message, channel=rendered.channel, provider=call.provider.name, outcome=outcome,
        request_summary=result.request_summary if result else {"to": rendered.to},
        response_code=source.response_code, response_excerpt=(source.response_excerpt or "")[:2000],
        error_class=type(error).__name__ if error else "",
        provider_message_id=result.provider_message_id if result else "",
        duration_ms=call.duration_ms, created_at=call.started,
    )


def _ms_since(started: datetime) -> int:
    return int((clock.now() - started).total_seconds() * 1000)


_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def in_parallel(fn, items: list) -> list:
    """fn over items, in SIGNALBOX_SEND_THREADS threads shared by the process (created on first
    use, after any fork). Without Redis the cache lives in the database, so it stays serial."""
    global _pool
    threads = settings.SIGNALBOX_SEND_THREADS
    if threads <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="send")
    return list(_pool.map(fn, items))
