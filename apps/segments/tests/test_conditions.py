"""Segment conditions: validation naming the field, and SQL that agrees with the Python evaluator."""

from datetime import timedelta

import pytest

from apps.core import clock
from apps.events.models import Event
from apps.recipients.models import Recipient
from apps.recipients.tests.factories import RecipientFactory
from apps.segments import conditions
from apps.tenants.tests.factories import TenantFactory

ATTRIBUTES = [
    {"plan": "pro", "country": "DE", "age": 31, "tags": ["vip", "beta"], "score": 2.5,
     "address": {"city": "Berlin"}},
    {"plan": "free", "country": "AT", "age": "31", "tags": "vip-ish", "score": 10},
    {"plan": "pro", "country": "FR", "age": None, "tags": [], "flags": {"vip": True}},
    {"plan": 1, "country": "de", "age": 17.5, "renews": "2026-12-01"},
    {},
    {"plan": ["pro"], "country": "DE", "age": [31], "vip": True, "address": {"city": "Wien"}},
]

CONDITIONS = [
    {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"},
    {"field": "recipient.attributes.plan", "op": "ne", "value": "pro"},
    {"field": "recipient.attributes.plan", "op": "eq", "value": 1},
    {"field": "recipient.attributes.plan", "op": "eq", "value": ["pro"]},
    {"all": [{"field": "recipient.attributes.plan", "op": "eq", "value": "pro"},
             {"field": "recipient.attributes.country", "op": "in", "value": ["DE", "AT"]}]},
    {"field": "recipient.attributes.country", "op": "in", "value": ["DE", "AT", 3]},
    {"field": "recipient.attributes.age", "op": "gt", "value": 18},
    {"field": "recipient.attributes.age", "op": "lte", "value": 31},
    {"field": "recipient.attributes.age", "op": "gt", "value": "30"},
    {"field": "recipient.attributes.age", "op": "eq", "value": None},
    {"field": "recipient.attributes.age", "op": "exists"},
    {"field": "recipient.attributes.age", "op": "not_exists"},
    {"field": "recipient.attributes.tags", "op": "contains", "value": "vip"},
    {"field": "recipient.attributes.flags", "op": "contains", "value": "vip"},
    {"field": "recipient.attributes.vip", "op": "eq", "value": True},
    {"field": "recipient.attributes.flags.vip", "op": "ne", "value": False},
    {"field": "recipient.attributes.score", "op": "gte", "value": 2.5},
    {"field": "recipient.attributes.address.city", "op": "eq", "value": "Berlin"},
    {"field": "recipient.attributes.address.city", "op": "lt", "value": "C"},
    {"field": "recipient.attributes.renews", "op": "gt", "value": "2026-11-30"},
    {"not": {"field": "recipient.attributes.country", "op": "eq", "value": "DE"}},
    {"any": [{"field": "recipient.attributes.country", "op": "eq", "value": "FR"},
             {"field": "recipient.email", "op": "contains", "value": "user-1"}]},
    {"field": "recipient.email", "op": "exists"},
    {"field": "recipient.phone", "op": "not_exists"},
    {"field": "recipient.locale", "op": "in", "value": ["de", "en"]},
    {"field": "recipient.locale", "op": "ne", "value": "de"},
    {"field": "recipient.external_id", "op": "gt", "value": "user-3"},
    {"field": "recipient.created_at", "op": "within_last_days", "value": 3},
    {"field": "history.checkout.started", "op": "within_last_days", "value": 7},
    {"all": [{"field": "history.checkout.started", "op": "within_last_days", "value": 7},
             {"field": "history.order.completed", "op": "not_exists"}]},
    {"field": "history.order.completed", "op": "exists"},
    {"field": "history.checkout.started", "op": "gt", "value": "2020-01-01"},
    {"not": {"field": "recipient.created_at", "op": "exists"}},
    {"not": {"all": [{}, {"field": "recipient.created_at", "op": "not_exists"}]}},
    {"any": [{"not": {"all": [{}]}}, {"field": "recipient.locale", "op": "eq", "value": "en"}]},
    {"not": {"any": [{"field": "history.order.completed", "op": "exists"},
                     {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"}]}},
]


@pytest.fixture
def population(db):
    tenant = TenantFactory()
    now = clock.now()
    recipients = []
    for i, attributes in enumerate(ATTRIBUTES):
        recipient = RecipientFactory(tenant=tenant, attributes=attributes, locale=["de", "en", ""][i % 3],
                                     phone="+14155550123" if i == 2 else "")
        recipients.append(recipient)
    old = recipients[0]
    Recipient.objects.filter(pk=old.pk).update(created_at=now - timedelta(days=10))
    history = {
        0: [("checkout.started", 2)], 1: [("checkout.started", 2), ("order.completed", 1)],
        2: [("checkout.started", 9)], 3: [("order.completed", 30)], 5: [("checkout.started", 6.9)],
    }
    for index, done in history.items():
        for name, days_ago in done:
            Event.objects.create(tenant=tenant, recipient=recipients[index], name=name, source="api",
                                 message_id=f"{index}-{name}", occurred_at=now - timedelta(days=days_ago),
                                 received_at=now)
    # Another tenant's events never count.
    other = RecipientFactory()
    Event.objects.create(tenant=other.tenant, recipient=other, name="order.completed", source="api",
                         message_id="x", occurred_at=now, received_at=now)
    return tenant, now


@pytest.mark.parametrize("cond", CONDITIONS, ids=[str(i) for i in range(len(CONDITIONS))])
def test_sql_agrees_with_the_python_evaluator(population, cond):
    tenant, now = population
    assert conditions.validate(cond) == []
    names = conditions.history_names(cond)
    expected = set()
    for recipient in Recipient.objects.filter(tenant=tenant):
        history = {name: recipient.events.filter(name=name).order_by("-occurred_at")
                   .values_list("occurred_at", flat=True).first() for name in names}
        if conditions.evaluate(cond, conditions.facts(recipient, history), now):
            expected.add(recipient.pk)
    matched = set(Recipient.objects.filter(tenant=tenant).filter(
        conditions.compile_q(cond, tenant_id=tenant.pk, now=now)).values_list("pk", flat=True))
    assert matched == expected


def test_the_examples_pick_the_right_people(population):
    tenant, now = population
    ids = list(Recipient.objects.filter(tenant=tenant).order_by("pk").values_list("pk", flat=True))

    def members(cond):
        return {ids.index(pk) for pk in Recipient.objects.filter(tenant=tenant).filter(
            conditions.compile_q(cond, tenant_id=tenant.pk, now=now)).values_list("pk", flat=True)}

    assert members(CONDITIONS[4]) == {0}  # plan = pro and country in [DE, AT]
    assert members(CONDITIONS[29]) == {0, 5}  # checkout in 7 days, no order
    assert members(CONDITIONS[6]) == {0}  # age > 18: the text "31" and true are not numbers


@pytest.mark.parametrize(("cond", "path", "fragment"), [
    ({"all": [{"field": "trigger.properties.x", "op": "eq", "value": 1}]}, "conditions.all[0].field",
     "recipient."),
    ({"field": "recipient.nickname", "op": "eq", "value": "x"}, "conditions.field", "Unknown recipient"),
    ({"field": "history.signup", "op": "eq", "value": "x"}, "conditions.op", "does not apply"),
    ({"field": "history.signup", "op": "gt", "value": "yesterday"}, "conditions.value", "date"),
    ({"field": "recipient.email", "op": "eq", "value": 3}, "conditions.value", "text"),
    ({"field": "recipient.attributes.plan", "op": "eq", "value": {"ref": "recipient.email"}},
     "conditions.value", "references"),
    ({"any": [{"field": "recipient.attributes.age", "op": "gt", "value": [1]}]}, "conditions.any[0].value",
     "number"),
    ({"field": "recipient.attributes.tags", "op": "frobs", "value": 1}, "conditions.op", "Unknown operator"),
])
def test_validation_names_the_field(cond, path, fragment):
    errors = conditions.validate(cond)
    assert errors and errors[0][0] == path and fragment in errors[0][1]


def test_what_a_segment_depends_on():
    cond = CONDITIONS[29]
    assert conditions.history_names(cond) == {"checkout.started", "order.completed"}
    assert conditions.time_relative(cond) and not conditions.uses_profile(cond)
    assert conditions.uses_profile(CONDITIONS[0]) and not conditions.time_relative(CONDITIONS[0])
    assert conditions.uses_profile({})  # every recipient: a new profile joins
