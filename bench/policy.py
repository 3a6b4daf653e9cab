#!/usr/bin/env python
"""Policy overhead per message: what apps.policy adds to the delivery pipeline for one message.

    .venv/bin/python bench/policy.py                  # about 30 seconds
    .venv/bin/python bench/policy.py --messages 500   # quicker

The worst ordinary case of docs/policy.md: a tenant with 7 categories, quiet hours (not now),
caps of 10,000 a day and a week, on email and for marketing (so the counts run and pass), and
10 suppression rules over the recipient's categories that all apply and none fires; a recipient
with 1,000 messages sent in the last week (and 200 others with the same, so that the table has a
live one's size). Measured per message, after the claim and before rendering: loading the
batch's policy data (PolicyBatch: tenant policy from the per-process cache, preferences and the
suppression list), eligibility on two channels and timing (quiet hours, the recipient lock and
one aggregate for rules and caps, the sent_at stamp), each in its own transaction as the
pipeline runs it. After each message it is marked failed (not timed) so the history stays at
1,000. Also per message in batches of 50, as `messaging.send` tasks run them: all to that
recipient, and one to each of 50 of the others (a broadcast's batch). And the floor of one
message: the statements it was decided with, replayed from a bare psycopg client (what the
round trips and PostgreSQL cost, whatever the Python).

Needs PostgreSQL on 127.0.0.1:5432 (user `postgres`) and Redis on 127.0.0.1:6379; recreates
the database `signalbox_policy_bench`. Target: p50 < 1 ms. Writes bench/results/policy-latest.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import secrets
import statistics
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = "postgres://postgres@127.0.0.1:5432/postgres"
TARGET_MS = 1.0
HISTORY = 1000
RULES = 10
OTHERS = 200  # other recipients, each with the same 1,000 messages (200,000 rows)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=2000, help="messages timed one by one")
    parser.add_argument("--db-name", default="signalbox_policy_bench")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/8")
    return parser.parse_args(argv)


def setup(args: argparse.Namespace) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.db_name}"')
    os.environ.update({"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.db_name}",
                       "REDIS_URL": args.redis_url, "DJANGO_SETTINGS_MODULE": "config.settings.prod",
                       "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "127.0.0.1",
                       "LOG_LEVEL": "WARNING"})
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", "--noinput", verbosity=0)


def seed():
    from apps.core import clock
    from apps.delivery.models import ProviderConfig
    from apps.messaging.models import Message, Status
    from apps.policy.models import Cap, Category, Kind, PolicySettings, SuppressionRule
    from apps.recipients.models import Recipient
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.create(name="Bench", slug=f"bench-{uuid.uuid4().hex[:6]}")
    for channel in ("email", "sms"):
        ProviderConfig.objects.create(tenant=tenant, name=channel, channel=channel, kind="log")
    kinds = {"security": Kind.TRANSACTIONAL, "billing": Kind.TRANSACTIONAL, "product-updates": Kind.PRODUCT,
             "marketing": Kind.COMMERCIAL, "onboarding": Kind.PRODUCT, "newsletter": Kind.COMMERCIAL,
             "cart": Kind.COMMERCIAL}
    for key, kind in kinds.items():
        Category.objects.create(tenant=tenant, key=key, name=key, kind=kind, required=key == "security")
    now = clock.now()
    def later(hours: int) -> dt.time:  # quiet hours that do not include now (UTC; the recipient's
        # zone is +5:45, so they are somewhere else in its day: checked, never in force)
        return (now + dt.timedelta(hours=hours)).time().replace(second=0, microsecond=0)

    PolicySettings.objects.create(tenant=tenant, quiet_start=later(3), quiet_end=later(5),
                                  cap_per_day=10_000, cap_per_week=10_000)
    Cap.objects.create(tenant=tenant, scope=Cap.Scope.CHANNEL, key="email", period=Cap.Period.DAY,
                       limit=10_000)
    Cap.objects.create(tenant=tenant, scope=Cap.Scope.CATEGORY, key="marketing", period=Cap.Period.WEEK,
                       limit=10_000)
    keys = list(kinds)
    triggers = [key for key in keys if key != "marketing"]  # the bench sends marketing
    for n in range(RULES):  # every rule applies to marketing; none fires (windows of minutes)
        SuppressionRule.objects.create(
            tenant=tenant, name=f"rule {n}", kinds=[Kind.COMMERCIAL], window_minutes=1 + n,
            after_categories=[triggers[n % len(triggers)], triggers[(n + 3) % len(triggers)]])
    recipient = Recipient.objects.create(tenant=tenant, external_id="bench-user", email="ada@example.com",
                                         phone="+14155550101", timezone="Asia/Kathmandu")
    Message.objects.bulk_create([Message(
        tenant=tenant, recipient=recipient, channels=["email"], channel="email", category=keys[n % len(keys)],
        status=Status.SENT, sent_at=now - dt.timedelta(minutes=15 + n * 10), dedupe_key=f"history:{n}",
        created_at=now, updated_at=now) for n in range(HISTORY)])  # 1,000 over the last ~7 days
    crowd(tenant, recipient)
    return tenant, recipient


def crowd(tenant, recipient) -> None:
    """Other recipients with the same history, so that the table has the size of a live one
    (a table of 1,000 rows is read whole by PostgreSQL, whatever its indexes)."""
    from apps.messaging.models import Message
    from apps.recipients.models import Recipient
    from django.db import connection

    others = Recipient.objects.bulk_create([Recipient(
        tenant=tenant, external_id=f"other-{n}", email=f"other-{n}@example.com", timezone="UTC")
        for n in range(OTHERS)])
    columns = [f.column for f in Message._meta.concrete_fields if not f.primary_key]
    copied = ["r.id" if c == "recipient_id" else "m.dedupe_key || ':' || r.id" if c == "dedupe_key"
              else f"m.{c}" for c in columns]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {Message._meta.db_table} ({', '.join(columns)}) "  # noqa: S608
                       f"SELECT {', '.join(copied)} FROM {Message._meta.db_table} m, "
                       f"{Recipient._meta.db_table} r WHERE m.recipient_id = %s AND r.id = ANY(%s)",
                       [recipient.pk, [o.pk for o in others]])


def claimed(tenant, recipient, n: int) -> list:
    """`n` claimed messages to `recipient` (or, given a list, one to each of them)."""
    from apps.core import clock
    from apps.messaging.models import Message, Status

    now = clock.now()
    recipients = recipient if isinstance(recipient, list) else [recipient] * n
    messages = Message.objects.bulk_create([Message(
        tenant=tenant, recipient=to, channels=["email", "sms"], category="marketing",
        status=Status.SENDING, dedupe_key=f"bench:{uuid.uuid4()}", created_at=now, updated_at=now)
        for to in recipients])
    rows = {m.pk: m for m in Message.objects.select_related("tenant", "recipient")
            .filter(pk__in=[m.pk for m in messages])}
    return [rows[m.pk] for m in messages]


def decide(messages: list) -> None:
    """What the pipeline runs for policy: one PolicyBatch, eligibility per message and channel,
    then timing for the batch (messages_send)."""
    from apps.messaging.pipeline import ADDRESS
    from apps.policy.services import PolicyBatch

    batch = PolicyBatch(messages, ADDRESS)
    for message in messages:
        for channel in message.channels:
            assert batch.channel_blocked(message, channel) is None
    held = batch.timing_many([(message, "email") for message in messages])
    assert set(held.values()) == {None}, "the bench messages must pass"


def release(messages: list) -> None:
    from apps.messaging.models import Message, Status

    Message.objects.filter(pk__in=[m.pk for m in messages]).update(status=Status.FAILED)


def run(args: argparse.Namespace) -> str:
    from apps.recipients.models import Recipient
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    tenant, recipient = seed()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")  # as autovacuum leaves a settled table (index-only scans)
    connection.force_debug_cursor = True  # to list the queries; production settings otherwise
    warm = claimed(tenant, recipient, 50)
    with CaptureQueriesContext(connection) as queries:  # the first batch prepares the lock's statements
        decide(warm)
    release(warm)
    prepare = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("PREPARE")]
    for _ in range(2):  # the first lone message prepares the aggregate on the connection
        one = claimed(tenant, recipient, 1)
        with CaptureQueriesContext(connection) as queries:
            decide(one)
        release(one)
        prepare += [q["sql"] for q in queries.captured_queries if q["sql"].startswith("PREPARE")]
    connection.force_debug_cursor = False
    single = []
    for message in claimed(tenant, recipient, args.messages):
        started = time.perf_counter()
        decide([message])
        single.append((time.perf_counter() - started) * 1000)
        release([message])
    batched = []
    for _ in range(max(1, args.messages // 50)):
        messages = claimed(tenant, recipient, 50)
        started = time.perf_counter()
        decide(messages)
        batched.append((time.perf_counter() - started) * 1000 / 50)
        release(messages)
    others = list(Recipient.objects.filter(tenant=tenant).exclude(pk=recipient.pk).order_by("pk"))
    spread = []
    for n in range(max(1, args.messages // 50)):
        messages = claimed(tenant, others[n * 50 % len(others):][:50], 50)
        started = time.perf_counter()
        decide(messages)
        spread.append((time.perf_counter() - started) * 1000 / 50)
        release(messages)
    sql = [q["sql"] for q in queries.captured_queries]
    cases = {"one message per batch": single, "per message, batches of 50 to the recipient": batched,
             "per message, batches of 50 to 50 recipients with the same history": spread,
             "floor of one message: its statements replayed by a bare psycopg client":
                 replay(sql, args.messages, prepare)}
    return report(args, cases, sql, plan_of_count(sql))


def replay(queries: list[str], times: int, prepare: list[str]) -> list[float]:
    """The statements one message was decided with (as sent: client-side binding leaves them
    complete), replayed `times` times from a bare psycopg connection, one simple query each:
    no Django, no Python deciding, only the round trips and PostgreSQL's work. The lock's
    transaction stamps the same released message again, which changes no count. `prepare`:
    what the connection ran once before (the statements prepared on it)."""
    import psycopg
    from django.db import connection

    settings = connection.settings_dict
    timings = []
    with psycopg.connect(dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"],
                         port=settings["PORT"], autocommit=True) as conn:
        cursor = psycopg.ClientCursor(conn)
        for sql in prepare:
            cursor.execute(sql)
        for _ in range(times):
            started = time.perf_counter()
            for sql in queries:
                cursor.execute(sql)
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def plan_of_count(queries: list[str]) -> tuple[int, str]:
    """Which query holds the rules' and caps' aggregate (from 1), and its EXPLAIN ANALYZE, as the
    last message ran it (prepared, with its generic plan, or plain)."""
    from apps.policy.services import GENERIC_PLAN
    from django.db import connection, transaction

    number, count = next((n, part) for n, q in enumerate(queries, 1) for part in q.split("; ")
                         if part.startswith(("SELECT recipient_id, category", "EXECUTE signalbox_recent_")))
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(GENERIC_PLAN)
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {count}")
        return number, "\n".join(row[0] for row in cursor.fetchall())


def pct(values: list[float], p: float) -> float:
    return statistics.quantiles(values, n=100)[int(p) - 1] if len(values) > 1 else values[0]


def report(args, cases: dict[str, list[float]], queries: list[str], plan: tuple[int, str]) -> str:
    rows = "\n".join(f"| {name} | {len(v)} | {statistics.median(v):.3f} | {pct(v, 95):.3f} | "
                     f"{pct(v, 99):.3f} | {'meets' if statistics.median(v) < TARGET_MS else 'MISSES'} |"
                     for name, v in cases.items())
    listed = "\n".join(f"{n}. `{q[:140]}`" for n, q in enumerate(queries, 1))
    return f"""# Policy overhead per message

{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC · {platform.node()} · Python {platform.python_version()} ·
load average {os.getloadavg()[0]:.2f} · {RULES} rules, {HISTORY} messages in the recipient's last week

| case | timings | p50 ms | p95 ms | p99 ms | p50 < {TARGET_MS} ms |
|---|---|---|---|---|---|
{rows}

Queries for one message ({len(queries)}; the tenant's policy comes from the per-process cache):

{listed}

The rules' and caps' aggregate (in query {plan[0]}), `EXPLAIN (ANALYZE, BUFFERS)` after the run:

```
{plan[1]}
```
"""


def main() -> None:
    args = parse_args(sys.argv[1:])
    setup(args)
    text = run(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "policy-latest.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
