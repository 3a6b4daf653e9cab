"""The delivery pipeline: one order for every message, plain Python (no Celery).

claim → eligibility → route → timing → render → send → record

Templates plug into `render`; Policy adds its checks to `eligibility` and `timing`. Until they
land those stages pass everything through.
"""

import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings

from apps.core import clock
from apps.delivery.breaker import breaker_allows, breaker_is_open, breaker_record
from apps.delivery.providers.base import ProviderError, Rendered
from apps.delivery.providers.registry import provider_for
from apps.delivery.selectors import providers_for
from apps.messaging.models import Attempt, Channel, Message, Status
from apps.messaging.services import message_note, message_transition

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


def message_send(*, message_id: int) -> Outcome | None:
    """Take a queued message through the pipeline. None if another worker has it (or it is
    not due yet)."""
    message = claim(message_id)
    if message is None:
        return None
    if message.expires_at is not None and message.expires_at <= clock.now():
        message_transition(message=message, to=Status.EXPIRED, reason_code="expired",
                           reason=f"Not sent by its expiry time {message.expires_at.isoformat()}.")
        return Outcome(Status.EXPIRED)
    # Each channel's providers, looked up once (the hierarchy walk costs queries).
    providers = {} if message.test_mode else {
        channel: providers_for(tenant=message.tenant, channel=channel) for channel in message.channels}
    decisions = eligibility(message, providers)
    while True:
        channel = route(message, decisions)
        if channel is None and DOWN in decisions.values():
            return schedule_retry(message, settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS)
        if channel is None:
            message_transition(message=message, to=Status.FAILED, reason_code="no_eligible_channel",
                               reason="No requested channel can be used.", detail={"channels": decisions})
            return Outcome(Status.FAILED)
        if channel != message.channel:
            if message.channel:
                message_note(message=message, status=Status.REROUTED, reason_code="channel_failed",
                             reason=f"Every {message.channel} provider failed; trying {channel}.",
                             detail={"from": message.channel, "to": channel, "channels": decisions})
            message.channel = channel
            Message.objects.filter(pk=message.pk).update(channel=channel)
        # timing: expiry is checked above; Policy adds quiet hours, suppression and caps here.
        outcome = send(message, render(message, channel), providers.get(channel, []))
        if outcome is not None:
            return outcome
        decisions[channel] = "every provider failed permanently"  # on to the next channel


def claim(message_id: int) -> Message | None:
    """Move a due, queued message to `sending`; of racing workers exactly one wins."""
    message = Message.objects.select_related("tenant", "recipient").filter(pk=message_id).first()
    now = clock.now()
    if message is None or message.status != Status.QUEUED:
        return None
    if message.next_attempt_at is not None and message.next_attempt_at > now:
        return None
    if not message_transition(message=message, to=Status.SENDING, reason_code="claimed",
                              attempts=message.attempts + 1, next_attempt_at=None):
        return None
    return message


def eligibility(message: Message, providers: dict[str, list]) -> dict[str, str]:
    """Each requested channel → "eligible" or why not."""
    decisions = {}
    for channel in message.channels:
        configs = providers.get(channel, [])
        if not ADDRESS[channel](message.recipient):
            decisions[channel] = f"the recipient has no {channel} address"
        elif not message.test_mode and not configs:
            decisions[channel] = f"no {channel} provider is configured"
        elif configs and all(breaker_is_open(tenant_id=message.tenant_id, config_id=c.pk) for c in configs):
            decisions[channel] = DOWN
        else:
            decisions[channel] = "eligible"
        # Policy adds: required category, unsubscribe, preferences, suppression list, health.
    return decisions


def route(message: Message, decisions: dict[str, str]) -> str | None:
    """The first eligible channel, not before the one already tried (fallback moves forward)."""
    start = message.channels.index(message.channel) if message.channel in message.channels else 0
    for channel in message.channels[start:]:
        if decisions.get(channel) == "eligible":
            return channel
    return None


def render(message: Message, channel: str) -> Rendered:
    """The content for `channel`. Templates plug in here; until then it is the API's content."""
    return Rendered(channel=channel, to=ADDRESS[channel](message.recipient),
                    content=message.content.get(channel, {}))


def send(message: Message, rendered: Rendered, configs: list) -> Outcome | None:
    """Try the channel's providers in order. None means every one failed permanently: the
    caller moves on to the next channel."""
    configs = [None] if message.test_mode else list(configs)  # None: the log provider
    if message.provider:  # an ambiguous failure is retried on the same provider, first
        configs.sort(key=lambda c: (c.name if c else "log") != message.provider)
    retry_after, ambiguous = None, False
    for config in configs:
        if config is not None and not breaker_allows(tenant_id=message.tenant_id, config_id=config.pk):
            # Open circuit: skip it; if every provider is skipped, try again after the cool-down.
            retry_after = max(retry_after or 0, settings.SIGNALBOX_BREAKER_COOL_DOWN_SECONDS)
            continue
        provider = provider_for(config)
        started = clock.now()
        try:
            result = provider.send(rendered, idempotency_key=f"msg-{message.pk}")
        except ProviderError as error:
            record_attempt(message, provider, rendered, started, error=error)
            if config is not None and not error.permanent:
                breaker_record(tenant_id=message.tenant_id, config_id=config.pk, ok=False)
            if error.ambiguous:
                ambiguous = True
                Message.objects.filter(pk=message.pk).update(provider=provider.name)
                retry_after = error.retry_after
                break  # never fail over: the first provider may have sent it
            if not error.permanent:
                retry_after = max(retry_after or 0, error.retry_after or 0)
            continue
        record_attempt(message, provider, rendered, started, result=result)
        if config is not None:
            breaker_record(tenant_id=message.tenant_id, config_id=config.pk, ok=True)
        message_transition(
            message=message, to=Status.SENT, reason_code="accepted_by_provider",
            reason=f"Accepted by {provider.name}.", provider=provider.name,
            provider_message_id=result.provider_message_id, sent_at=clock.now(),
            rendered={"to": rendered.to, **rendered.content},
        )
        return Outcome(Status.SENT)
    if retry_after is None and not ambiguous:
        return None
    return schedule_retry(message, retry_after)


def schedule_retry(message: Message, retry_after: float | None) -> Outcome:
    """Back off exponentially with full jitter (honouring Retry-After), or fail after the last."""
    if message.attempts >= settings.SIGNALBOX_MESSAGE_MAX_ATTEMPTS:
        message_transition(message=message, to=Status.FAILED, reason_code="attempts_exhausted",
                           reason=f"Failed after {message.attempts} attempts.")
        return Outcome(Status.FAILED)
    ceiling = min(settings.SIGNALBOX_RETRY_MAX_SECONDS,
                  settings.SIGNALBOX_RETRY_BASE_SECONDS * 2 ** message.attempts)
    delay = max(random.uniform(0, ceiling), retry_after or 0)
    message_transition(message=message, to=Status.QUEUED, reason_code="retry_scheduled",
                       reason=f"Attempt {message.attempts} failed; retrying in {delay:.0f} s.",
                       next_attempt_at=clock.now() + timedelta(seconds=delay))
    return Outcome(Status.QUEUED, retry_in=delay)


def record_attempt(message, provider, rendered, started, *, result=None, error=None) -> Attempt:
    if error is None:
        outcome = Attempt.Outcome.ACCEPTED
    elif error.ambiguous:
        outcome = Attempt.Outcome.AMBIGUOUS
    else:
        outcome = Attempt.Outcome.PERMANENT if error.permanent else Attempt.Outcome.RETRYABLE
    source = result or error
    return Attempt.objects.create(
        message=message, channel=rendered.channel, provider=provider.name, outcome=outcome,
        request_summary=result.request_summary if result else {"to": rendered.to},
        response_code=source.response_code, response_excerpt=(source.response_excerpt or "")[:2000],
        error_class=type(error).__name__ if error else "",
        provider_message_id=result.provider_message_id if result else "",
        duration_ms=int((clock.now() - started).total_seconds() * 1000), created_at=started,
    )
