"""The digest, throttle, webhook and update_profile steps in the pure engine, the validation and
the diagram: no database."""

import json
from datetime import UTC, datetime, timedelta

from apps.journeys import engine
from apps.journeys.definition import validate
from apps.journeys.diagram import journey_svg

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)


def event(name="comment.created", event_id=1, **properties):
    return engine.event_data(event_id=event_id, name=name, properties=properties, occurred_at=NOW)


def facts(now=NOW, **kw):
    profile = {"external_id": "ada", "attributes": {"plan": "pro", "trial": True}}
    return engine.Facts(now=now, recipient=profile, timezone="Europe/Berlin", **kw)


def journey(*steps):
    return {"trigger": {"event": "comment.created"}, "steps": list(steps)}


DIGEST = journey({"id": "collect", "type": "digest", "key": "{{ data.thread_id }}", "window": "10m",
                  "max_items": 3, "next": "mail"},
                 {"id": "mail", "type": "send", "template": "digest", "channels": ["email"]})


def test_a_digest_opens_with_its_trigger_absorbs_same_key_events_and_goes_on_at_its_maximum():
    started = engine.start(DIGEST, event(thread_id="t1", text="a"), facts())
    state = started.state
    assert (state.step, state.status, state.due_at) == ("collect", "active", NOW + timedelta(minutes=10))
    assert state.context["batch"] == {"key": "t1", "count": 1, "items": [{"thread_id": "t1", "text": "a"}]}
    assert engine.digest_key(DIGEST, state, event(thread_id="t2"), facts()) == "t2"
    second = engine.absorb(DIGEST, state, event(thread_id="t1", text="b"), facts())
    assert second.state.context["batch"]["count"] == 2 and state.context["batch"]["count"] == 1  # a copy
    assert not [e for e in second.effects if isinstance(e, engine.Send)]
    third = engine.absorb(DIGEST, second.state, event(thread_id="t1", text="c"), facts())
    assert [e.template for e in third.effects if isinstance(e, engine.Send)] == ["digest"]
    assert third.state.status == "completed"
    assert [i["text"] for i in third.state.context["batch"]["items"]] == ["a", "b", "c"]
    # Once past the digest, the run collects nothing more.
    assert engine.digest_key(DIGEST, third.state, event(thread_id="t1"), facts()) is None


def test_a_digest_window_ends_on_due_with_the_item_count():
    state = engine.start(DIGEST, event(thread_id="t1"), facts()).state
    assert not engine.on_due(DIGEST, state, facts(NOW + timedelta(minutes=9))).changed
    done = engine.on_due(DIGEST, state, facts(NOW + timedelta(minutes=10)))
    assert engine.Left("collect", "passed", "1 items") in done.effects
    assert [e.step for e in done.effects if isinstance(e, engine.Send)] == ["mail"]


THROTTLE = journey({"id": "limit", "type": "throttle", "limit": 2, "window": "1h", "key": "{{ data.topic }}",
                    "next": "sms"},
                   {"id": "sms", "type": "send", "template": "t", "channels": ["sms"]})


def test_a_throttle_asks_for_its_count_then_passes_or_exits_with_the_reason():
    asked = engine.start(THROTTLE, event(topic="db"), facts())
    assert asked.needs == {"throttle:limit:db"} and not asked.changed
    passed = engine.start(THROTTLE, event(topic="db"), facts(throttles={("limit", "db"): 1}))
    assert passed.state.status == "completed" and engine.Left("limit", "passed", "key: db") in passed.effects
    over = engine.start(THROTTLE, event(topic="db"), facts(throttles={("limit", "db"): 2}))
    assert (over.state.status, over.state.end_reason) == ("exited", "throttled: 2 per 1h reached")
    assert not [e for e in over.effects if isinstance(e, engine.Send)]


HOOK = journey({"id": "crm", "type": "webhook", "url": "https://crm.example/{{ recipient.external_id }}",
                "headers": {"X-Plan": "{{ recipient.plan }}"}, "body": {"thread": "{{ data.thread_id }}"},
                "next": "is-gold", "on_failure": "sorry"},
               {"id": "is-gold", "type": "branch", "default": "sorry", "paths": [
                   {"conditions": {"field": "webhooks.crm.body.tier", "op": "eq", "value": "gold"},
                    "next": "gold"}]},
               {"id": "gold", "type": "send", "template": "gold", "channels": ["sms"]},
               {"id": "sorry", "type": "send", "template": "sorry", "channels": ["sms"]})


def test_a_webhook_step_parks_the_run_and_its_answer_moves_it_on():
    parked = engine.start(HOOK, event(thread_id=9), facts()).state
    assert (parked.status, parked.due_at, parked.wait_event) == ("active", NOW, "webhook:crm")
    assert not engine.on_due(HOOK, parked, facts()).changed  # the service makes the call
    request = engine.webhook_request(HOOK, parked, facts())
    assert (request["method"], request["url"], request["headers"]) == (
        "POST", "https://crm.example/ada", {"X-Plan": "pro", "Content-Type": "application/json"})
    assert json.loads(request["body"]) == {"thread": "9"}

    retry = engine.on_webhook(HOOK, parked, engine.WebhookAnswer(503, error="HTTP 503", retry_in=4), facts())
    assert retry.state.due_at == NOW + timedelta(seconds=4) and retry.state.wait_event == "webhook:crm"
    assert retry.state.context["pending_webhook"]["attempts"] == 1 and not retry.effects

    gold = engine.on_webhook(HOOK, retry.state, engine.WebhookAnswer(200, {"tier": "gold"}), facts())
    assert [e.template for e in gold.effects if isinstance(e, engine.Send)] == ["gold"]
    assert gold.state.context["webhooks"] == {"crm": {"status": 200, "body": {"tier": "gold"}}}
    # An answer for a run no longer waiting for it changes nothing.
    assert not engine.on_webhook(HOOK, gold.state, engine.WebhookAnswer(200, {}), facts()).changed

    failed = engine.on_webhook(HOOK, parked, engine.WebhookAnswer(500, "oops", error="HTTP 500"), facts())
    assert engine.Left("crm", "failed", "HTTP 500") in failed.effects
    assert [e.template for e in failed.effects if isinstance(e, engine.Send)] == ["sorry"]


def test_update_profile_renders_values_and_later_steps_see_them():
    definition = journey(
        {"id": "tag", "type": "update_profile", "set": {"plan": "{{ data.plan | upcase }}", "n": 3},
         "unset": ["trial"], "next": "is-big"},
        {"id": "is-big", "type": "branch", "default": "small", "paths": [
            {"conditions": {"field": "recipient.attributes.plan", "op": "eq", "value": "BIG"},
             "next": "big"}]},
        {"id": "big", "type": "send", "template": "big", "channels": ["sms"]},
        {"id": "small", "type": "send", "template": "small", "channels": ["sms"]})
    result = engine.start(definition, event(plan="big"), facts())
    assert engine.UpdateProfile("tag", {"plan": "BIG", "n": 3, "trial": None}) in result.effects
    assert [e.template for e in result.effects if isinstance(e, engine.Send)] == ["big"]


def test_new_steps_report_errors_on_their_fields():
    definition = journey(
        {"id": "d", "type": "digest", "key": "{{ data.x", "next": "t"},
        {"id": "t", "type": "throttle", "limit": 0, "window": "soon", "next": "w"},
        {"id": "w", "type": "webhook", "method": "FETCH", "url": "ftp://x", "headers": {"a": 1},
         "body": {"x": "{% if %}"}, "timeout": 99, "next": "p", "on_failure": "nowhere"},
        {"id": "p", "type": "update_profile", "set": {"a": "{{ }"}, "unset": ["a", 3]},
        {"id": "e", "type": "update_profile"},
        {"id": "m", "type": "digest", "until_time": "25:00", "max_items": 0})
    errors = validate(definition)
    assert set(errors) == {
        "steps.d.key", "steps.d.window", "steps.t.limit", "steps.t.window", "steps.w.method", "steps.w.url",
        "steps.w.headers", "steps.w.body.x", "steps.w.timeout", "steps.w.on_failure", "steps.p.set.a",
        "steps.p.unset", "steps.e.set", "steps.m.until_time", "steps.m.max_items"}, errors
    assert errors["steps.d.key"][0].startswith("Liquid: ")


def test_a_loop_through_a_webhook_needs_a_delay_but_a_digest_is_one():
    hook_loop = journey({"id": "w", "type": "webhook", "url": "https://x.example", "next": "w"})
    assert "steps.w.next" in validate(hook_loop)
    digest_loop = journey({"id": "d", "type": "digest", "window": "1h", "next": "s"},
                          {"id": "s", "type": "send", "template": "t", "channels": ["sms"], "next": "d"})
    assert validate(digest_loop) == {}


def test_the_diagram_draws_the_new_steps_and_failure_edges():
    svg = str(journey_svg(HOOK, {}, {}))
    assert 'data-step="crm"' in svg and "crm · webhook" in svg and "POST https://crm.example/" in svg
    assert svg.count('class="failure-edge"') == 1 and ">on_failure</text>" in svg
    svg = str(journey_svg(DIGEST, {}, {}))
    assert "collect · digest" in svg and "by {{ data.thread_id }} window 10m" in svg
    svg = str(journey_svg(THROTTLE, {}, {}))
    assert "2 per 1h by {{ data.topic }}" in svg
