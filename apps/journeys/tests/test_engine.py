"""The pure engine and condition language: no database, no Celery."""

from datetime import UTC, datetime, timedelta

from apps.journeys import conditions, engine
from apps.journeys.definition import validate

NOW = datetime(2026, 3, 2, 14, 0, tzinfo=UTC)  # 15:00 in Berlin
CART = {
    "trigger": {"event": "cart.abandoned"},
    "exit_events": [{"event": "order.completed"}],
    "steps": [
        {"id": "later", "type": "delay", "duration": "45m", "next": "sms"},
        {"id": "sms", "type": "send", "template": "cart-reminder", "channels": ["sms"], "next": "morning"},
        {"id": "morning", "type": "delay", "until_time": "09:00", "next": "mail"},
        {"id": "mail", "type": "send", "template": "cart-mail", "channels": ["email"]},
    ],
}


def event(name, at=NOW, **properties):
    return engine.event_data(event_id=1, name=name, properties=properties, occurred_at=at)


def facts(now=NOW, **kw):
    return engine.Facts(now=now, recipient={"attributes": {"plan": "pro"}}, timezone="Europe/Berlin", **kw)


def test_a_run_walks_delays_and_sends_in_the_recipients_time_zone():
    started = engine.start(CART, event("cart.abandoned"), facts())
    assert started.state.step == "later" and started.state.due_at == NOW + timedelta(minutes=45)
    assert not [e for e in started.effects if isinstance(e, engine.Send)]

    assert not engine.on_due(CART, started.state, facts(NOW + timedelta(minutes=44))).changed
    sent = engine.on_due(CART, started.state, facts(NOW + timedelta(minutes=45)))
    sends = [e for e in sent.effects if isinstance(e, engine.Send)]
    assert [(s.template, s.channels, s.dedupe_key_suffix) for s in sends] == [
        ("cart-reminder", ("sms",), "sms")]
    # Next 09:00 in Berlin (UTC+1 in March) is 08:00 UTC the next day.
    assert sent.state.step == "morning"
    assert sent.state.due_at == datetime(2026, 3, 3, 8, 0, tzinfo=UTC)

    done = engine.on_due(CART, sent.state, facts(sent.state.due_at))
    assert [e.template for e in done.effects if isinstance(e, engine.Send)] == ["cart-mail"]
    assert done.state.status == engine.COMPLETED and done.state.due_at is None


def test_an_exit_event_ends_the_run_at_any_step():
    started = engine.start(CART, event("cart.abandoned"), facts())
    ended = engine.on_event(CART, started.state, event("order.completed"), facts())
    assert ended.state.status == engine.EXITED and ended.state.due_at is None
    assert engine.Left("later", "exited", "Exit event order.completed") in ended.effects
    # Nothing further happens to it.
    assert not engine.on_due(CART, ended.state, facts(NOW + timedelta(days=3))).changed
    assert not engine.on_event(CART, started.state, event("page.viewed"), facts()).changed


WAIT = {
    "trigger": {"event": "order.placed"},
    "steps": [
        {"id": "paid", "type": "wait", "event": "order.paid", "timeout": "3d", "on_match": "thanks",
         "on_timeout": "nudge",
         "conditions": {"field": "event.properties.order_id", "op": "eq",
                        "value": {"ref": "trigger.properties.order_id"}}},
        {"id": "thanks", "type": "send", "template": "thanks", "channels": ["email"]},
        {"id": "nudge", "type": "send", "template": "nudge", "channels": ["sms"]},
    ],
}


def test_a_wait_matches_only_the_same_order_and_otherwise_times_out():
    started = engine.start(WAIT, event("order.placed", order_id="A"), facts())
    assert started.state.status == engine.WAITING and started.state.wait_event == "order.paid"
    assert not engine.on_event(WAIT, started.state, event("order.paid", order_id="B"), facts()).changed
    matched = engine.on_event(WAIT, started.state, event("order.paid", order_id="A"), facts())
    assert [e.template for e in matched.effects if isinstance(e, engine.Send)] == ["thanks"]
    assert matched.state.context["events"]["paid"]["properties"] == {"order_id": "A"}

    timed_out = engine.on_due(WAIT, started.state, facts(NOW + timedelta(days=3)))
    assert [e.template for e in timed_out.effects if isinstance(e, engine.Send)] == ["nudge"]
    assert engine.Left("paid", "timeout", "No order.paid within 3d") in timed_out.effects


BRANCH = {
    "trigger": {"event": "signup"},
    "steps": [
        {"id": "welcome", "type": "send", "template": "welcome", "channels": ["email"], "next": "check"},
        {"id": "check", "type": "branch", "default": "tips", "paths": [
            {"conditions": {"field": "history.project.created", "op": "not_exists"}, "next": "nudge"},
        ]},
        {"id": "nudge", "type": "send", "template": "nudge", "channels": ["sms"]},
        {"id": "tips", "type": "send", "template": "tips", "channels": ["email"]},
    ],
}


def test_a_branch_asks_for_the_history_it_needs_then_chooses():
    asked = engine.start(BRANCH, event("signup"), facts())
    assert asked.needs == {"history:project.created"} and not asked.changed
    nudged = engine.start(BRANCH, event("signup"), facts(history={"project.created": None}))
    assert [e.template for e in nudged.effects if isinstance(e, engine.Send)] == ["welcome", "nudge"]
    tipped = engine.start(BRANCH, event("signup"), facts(history={"project.created": NOW.isoformat()}))
    assert [e.template for e in tipped.effects if isinstance(e, engine.Send)] == ["welcome", "tips"]


def test_a_branch_on_an_earlier_messages_status():
    definition = {**BRANCH, "steps": [BRANCH["steps"][0], {
        "id": "check", "type": "branch", "default": "tips", "paths": [
            {"conditions": {"field": "messages.welcome.status", "op": "in", "value": ["failed", "bounced"]},
             "next": "nudge"}]}, *BRANCH["steps"][2:]]}
    assert engine.start(definition, event("signup"), facts()).needs == {"messages"}
    bounced = engine.start(definition, event("signup"), facts(messages={"welcome": {"status": "bounced"}}))
    assert [e.template for e in bounced.effects if isinstance(e, engine.Send)][-1] == "nudge"


def test_conditions_cover_the_operators():
    two_days_ago = (NOW - timedelta(days=2)).isoformat()
    data = {"trigger": {"properties": {"total": 120, "tags": ["vip"], "at": two_days_ago}},
            "recipient": {"attributes": {"plan": "pro"}}}
    holds = [
        {"field": "trigger.properties.total", "op": "gt", "value": 100},
        {"field": "trigger.properties.total", "op": "lte", "value": 120},
        {"field": "trigger.properties.tags", "op": "contains", "value": "vip"},
        {"field": "recipient.attributes.plan", "op": "in", "value": ["pro", "team"]},
        {"field": "recipient.attributes.plan", "op": "ne", "value": "free"},
        {"field": "trigger.properties.at", "op": "within_last_days", "value": 3},
        {"field": "recipient.attributes.missing", "op": "not_exists"},
        {"not": {"field": "trigger.properties.total", "op": "eq", "value": 1}},
        {"any": [{"field": "trigger.properties.total", "op": "lt", "value": 0},
                 {"field": "trigger.properties.total", "op": "exists"}]},
    ]
    fails = [
        {"field": "trigger.properties.at", "op": "within_last_days", "value": 1},
        {"field": "trigger.properties.total", "op": "gt", "value": "a string"},  # never a crash
        {"all": [{"field": "trigger.properties.total", "op": "gt", "value": 1},
                 {"field": "recipient.attributes.plan", "op": "eq", "value": "free"}]},
    ]
    assert all(conditions.evaluate(c, data, NOW) for c in holds)
    assert not any(conditions.evaluate(c, data, NOW) for c in fails)


def test_invalid_conditions_are_reported_with_their_path():
    errors = conditions.validate({"all": [{"field": "nowhere.x", "op": "eq", "value": 1},
                                          {"field": "event.properties.n", "op": "between", "value": 1},
                                          {"field": "event.properties.n", "op": "in", "value": 3}]})
    assert [path for path, _ in errors] == [
        "conditions.all[0].field", "conditions.all[1].op", "conditions.all[2].value"]


def test_bad_definitions_put_each_error_on_its_step():
    bad = {
        "trigger": {"event": "signup", "conditions": {"field": "trigger.x", "op": "nope"}},
        "steps": [
            {"id": "a", "type": "send", "template": "draft-only", "channels": ["email"], "next": "b"},
            {"id": "b", "type": "branch", "paths": [{"conditions": {"field": "trigger.x", "op": "exists"},
                                                     "next": "ghost"}], "default": "a"},
            {"id": "c", "type": "delay", "duration": "soon"},
            {"id": "d", "type": "wait", "event": "x"},
        ],
    }
    errors = validate(bad, template_published=lambda key: key != "draft-only")
    assert "trigger.conditions.op" in errors
    assert errors["steps.a.template"] == [
        "The template 'draft-only' does not exist or has no published version."]
    assert errors["steps.b.paths[0].next"] == ["Points to 'ghost', which is not a step of this journey."]
    assert "loop with no delay or wait" in errors["steps.a.next"][0] and "steps.b.next" in errors
    assert "steps.c.duration" in errors and "steps.d.timeout" in errors
    assert validate(CART, template_published=lambda key: True) == {}
    assert validate(WAIT) == {} and validate(BRANCH) == {}
    # A loop through a delay is fine.
    looped = {"trigger": {"event": "x"}, "steps": [
        {"id": "a", "type": "send", "template": "t", "channels": ["email"], "next": "b"},
        {"id": "b", "type": "delay", "duration": "1d", "next": "a"}]}
    assert validate(looped) == {}


def test_a_send_step_visited_again_gets_a_new_dedupe_key():
    looped = {"trigger": {"event": "x"}, "steps": [
        {"id": "a", "type": "send", "template": "t", "channels": ["email"], "next": "b"},
        {"id": "b", "type": "delay", "duration": "1d", "next": "a"}]}
    first = engine.start(looped, event("x"), facts())
    second = engine.on_due(looped, first.state, facts(NOW + timedelta(days=1)))
    assert [e.dedupe_key_suffix for e in first.effects + second.effects if isinstance(e, engine.Send)] == [
        "a", "a:2"]


def test_validation_never_crashes_on_arbitrary_json():
    import copy
    import random

    rng = random.Random(2)
    atoms = [None, 1, -1, "x", "", [], {}, [1], {"a": 1}, True, "1d", "09:00", {"ref": 1},
             {"ref": "trigger.x"}, "a", "b", "trigger.x", "eq", "exists", "send", "delay", "wait", "branch"]
    keys = ["trigger", "reentry", "exit_events", "goal", "start", "steps", "id", "type", "next", "template",
            "channels", "duration", "until_time", "until_date", "event", "timeout", "conditions", "paths",
            "default", "on_match", "on_timeout", "field", "op", "value", "all", "any", "not", "rule",
            "cooldown", "within", "priority", "category", "ref"]

    def junk(depth=0):
        roll = rng.random()
        if depth > 3 or roll < 0.4:
            return copy.deepcopy(rng.choice(atoms))
        if roll < 0.7:
            return {rng.choice(keys): junk(depth + 1) for _ in range(rng.randint(0, 5))}
        return [junk(depth + 1) for _ in range(rng.randint(0, 3))]

    for _ in range(5000):
        definition = junk()
        if isinstance(definition, dict):
            definition["steps"] = [{"id": rng.choice(["a", "b", 1, ["x"]]), "type": rng.choice(atoms),
                                    **(lambda extra: extra if isinstance(extra, dict) else {})(junk())}
                                   for _ in range(3)]
        assert isinstance(validate(definition, template_published=lambda key: True), dict)


def test_a_delay_until_a_date_from_the_trigger_or_the_profile():
    definition = {"trigger": {"event": "trial.started"}, "steps": [
        {"id": "ends", "type": "delay", "until_date": "trigger.properties.trial_ends", "next": "mail"},
        {"id": "mail", "type": "send", "template": "trial-over", "channels": ["email"]}]}
    dated = engine.start(definition, event("trial.started", trial_ends="2026-03-16T10:00:00+00:00"), facts())
    assert dated.state.due_at == datetime(2026, 3, 16, 10, 0, tzinfo=UTC)
    # A date without a time zone is the recipient's (Berlin: UTC+1 in March).
    local = engine.start(definition, event("trial.started", trial_ends="2026-03-16T09:00:00"), facts())
    assert local.state.due_at == datetime(2026, 3, 16, 8, 0, tzinfo=UTC)
    # No date, or one already past: the run goes straight on, and the path says why.
    missing = engine.start(definition, event("trial.started"), facts())
    assert engine.Left("ends", "passed", "No date at trigger.properties.trial_ends") in missing.effects
    past = engine.start(definition, event("trial.started", trial_ends="2026-01-01T00:00:00+00:00"), facts())
    assert engine.Left("ends", "passed", "The date had passed") in past.effects
    assert [e.template for e in past.effects if isinstance(e, engine.Send)] == ["trial-over"]
    renews = {**definition["steps"][0], "until_date": "recipient.attributes.renews"}
    profile = {**definition, "steps": [renews, definition["steps"][1]]}
    renewing = engine.start(profile, event("trial.started"), engine.Facts(
        now=NOW, recipient={"attributes": {"renews": "2026-04-01T00:00:00+00:00"}}))
    assert renewing.state.due_at == datetime(2026, 4, 1, tzinfo=UTC)
