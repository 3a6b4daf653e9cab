#!/usr/bin/env python
"""Journey scheduler benchmark on PostgreSQL.

    .venv/bin/python bench/journeys.py                 # 1,000,000 runs, 100,000 due
    .venv/bin/python bench/journeys.py --runs 100000 --due 10000   # quick

1. Drops and recreates the database `signalbox_bench_journeys` (127.0.0.1:5432, user postgres),
   runs `manage.py migrate`, creates a tenant, two published templates and two active journeys:
   `delays` (delay 1d → send → delay 1d) and `waits` (wait for order.paid with the trigger's
   order_id, 3 days → send).
2. Loads, with set-based SQL, `--runs` recipients, each with a run waiting on the delay step
   (`--due` of them due at the same moment, the rest tomorrow) and a run waiting for an event,
   with their open path rows, then ANALYZE.
3. Advance: calls the tick job `journeys_advance_due` until nothing is due and reports steps/s
   (target ≥ 2,000), then checks that every due run advanced exactly once (its delay left once,
   one message `run:<run>:send` each, no run left due) and no other run moved.
4. Lookup: for `--lookups` random recipients, times `runs_for_events` (the consumer's one query
   for the runs an event may reach) in a rolled-back transaction, then filters the waiting runs
   whose awaited event matches; reports p50/p99 (target p99 < 10 ms).

Delivery is not part of it (bench/delivery.py measures that): the sends are stored but not
enqueued. Writes bench/results/journeys-latest.md.

5. Broadcast (then, in a subprocess: `--broadcast-only`; `--skip-broadcast` leaves it out): the
   full recompute of a segment (profile attribute and event history) of `--recipients` members
   (default 100,000) among twice as many recipients, then a broadcast to it through real
   workers, Redis and the delivery benchmark's provider simulator at 0 ms (bench/delivery.py
   `--simulator`). Database `signalbox_bench_broadcast` (recreated); recipients and events
   loaded with SQL; 2 worker processes `-P threads -c 16` (the delivery benchmark's batched
   design). Reports the segment's evaluation time, messages created/s (the fan-out: audience
   size / (fanned_out_at − started_at)), the time from start to the last request at the
   simulator, and checks one message per recipient and every message received. Writes
   bench/results/broadcast-latest.md.

    .venv/bin/python bench/journeys.py --broadcast-only --recipients 5000   # quick
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import secrets
import statistics
import string
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

DELAYS = {"trigger": {"event": "bench.delays"}, "reentry": {"rule": "every_time"}, "steps": [
    {"id": "wait-a-day", "type": "delay", "duration": "1d", "next": "send"},
    {"id": "send", "type": "send", "template": "bench", "channels": ["email"], "next": "again"},
    {"id": "again", "type": "delay", "duration": "1d"}]}
WAITS = {"trigger": {"event": "order.placed"}, "reentry": {"rule": "every_time"}, "steps": [
    {"id": "paid", "type": "wait", "event": "order.paid", "timeout": "3d", "on_match": "thanks",
     "conditions": {"field": "event.properties.order_id", "op": "eq",
                    "value": {"ref": "trigger.properties.order_id"}}},
    {"id": "thanks", "type": "send", "template": "bench", "channels": ["email"]}]}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def setup_database(db_name: str, env: dict) -> None:
    import psycopg

    log(f"recreating database {db_name}")
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{db_name}"')
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput"], cwd=ROOT, env=env, check=True,
                   capture_output=True, timeout=600)


def create_journeys():
    from apps.content.models import Template
    from apps.content.services import template_version_publish
    from apps.journeys.models import Journey
    from apps.journeys.services import journey_activate
    from apps.tenants.models import Tenant

    tenant = Tenant.objects.create(name="Bench", slug="bench")
    template = Template.objects.create(tenant=tenant, key="bench", name="Bench", email_subject="Hi",
                                       email_body="<mj-text>Hello {{ recipient.external_id }}</mj-text>")
    template_version_publish(template=template, user=None)
    delays = journey_activate(journey=Journey.objects.create(tenant=tenant, key="delays", name="Delays",
                                                             definition=DELAYS))
    waits = journey_activate(journey=Journey.objects.create(tenant=tenant, key="waits", name="Waits",
                                                            definition=WAITS))
    return tenant, delays, waits


LOAD_SQL = """
INSERT INTO recipients_recipient (tenant_id, external_id, email, phone, locale, timezone, attributes,
    created_at, updated_at)
SELECT %(tenant)s, 'r' || g, 'r' || g || '@bench.example', '', 'en', 'UTC', '{}', %(now)s, %(now)s
FROM generate_series(1, %(runs)s) g;

INSERT INTO journeys_journeyrun (tenant_id, journey_id, version_id, recipient_id, status, current_step,
    context, due_at, wait_event, cancellation_key, entered_at, end_reason, created_at, updated_at)
SELECT %(tenant)s, %(delays)s, %(delays_version)s, r.id, 'active', 'wait-a-day',
    jsonb_build_object('trigger', jsonb_build_object('id', NULL, 'name', 'bench.delays',
        'properties', '{}'::jsonb, 'occurred_at', %(now_iso)s), 'events', '{}'::jsonb,
        'visits', '{"wait-a-day": 1}'::jsonb),
    CASE WHEN r.id %% %(every)s = 0 THEN %(due)s ELSE %(later)s END, '', '', %(now)s, '', %(now)s, %(now)s
FROM recipients_recipient r WHERE r.tenant_id = %(tenant)s;

INSERT INTO journeys_journeyrun (tenant_id, journey_id, version_id, recipient_id, status, current_step,
    context, due_at, wait_event, cancellation_key, entered_at, end_reason, created_at, updated_at)
SELECT %(tenant)s, %(waits)s, %(waits_version)s, r.id, 'waiting', 'paid',
    jsonb_build_object('trigger', jsonb_build_object('id', NULL, 'name', 'order.placed',
        'properties', jsonb_build_object('order_id', 'o' || r.id), 'occurred_at', %(now_iso)s),
        'events', '{}'::jsonb, 'visits', '{"paid": 1}'::jsonb),
    %(timeout)s, 'order.paid', '', %(now)s, '', %(now)s, %(now)s
FROM recipients_recipient r WHERE r.tenant_id = %(tenant)s;

INSERT INTO journeys_journeyrunstep (run_id, step_id, entered_at, outcome, reason)
SELECT run.id, step.id, %(now)s, '', ''
FROM journeys_journeyrun run JOIN journeys_journeystep step
    ON step.version_id = run.version_id AND step.key = run.current_step;
"""


def load(tenant, delays, waits, runs: int, due_count: int):
    from datetime import timedelta

    from apps.core import clock
    from django.db import connection

    now = clock.now()
    due = now - timedelta(seconds=1)
    log(f"loading {runs:,} recipients, {runs:,} delayed runs ({due_count:,} due now), {runs:,} waiting runs")
    started = time.monotonic()
    with connection.cursor() as cursor:
        for statement in LOAD_SQL.split(";\n"):
            if statement.strip():
                cursor.execute(statement, {
                    "tenant": tenant.pk, "delays": delays.pk, "delays_version": delays.live_version_id,
                    "waits": waits.pk, "waits_version": waits.live_version_id, "runs": runs,
                    "every": max(runs // due_count, 1), "due": due, "later": now + timedelta(days=1),
                    "timeout": now + timedelta(days=3), "now": now, "now_iso": now.isoformat()})
        cursor.execute("ANALYZE")
    log(f"loaded in {time.monotonic() - started:.0f} s")
    return due


def bench_advance(delays, due_count: int) -> dict:
    from apps.journeys.models import JourneyRunStep
    from apps.journeys.services import journeys_advance_due
    from apps.messaging.models import Message
    from django.db.models import Count

    due_runs = delays.runs.filter(due_at__lte=time_now()).count()
    log(f"advancing {due_runs:,} due runs")
    started = time.monotonic()
    advanced = 0
    while True:
        done = journeys_advance_due(budget_seconds=3600)
        advanced += done
        if not done:
            break
    elapsed = time.monotonic() - started
    messages = Message.objects.filter(journey_run__journey=delays)
    duplicates = messages.values("dedupe_key").annotate(n=Count("id")).filter(n__gt=1).count()
    left = JourneyRunStep.objects.filter(run__journey=delays, step__key="wait-a-day", outcome="passed")
    checks = {
        "due runs": due_runs,
        "advanced": advanced,
        "runs now at the second delay": delays.runs.filter(current_step="again").count(),
        "runs still due": delays.runs.filter(due_at__lte=time_now()).count(),
        "messages": messages.count(),
        "duplicate dedupe keys": duplicates,
        "delay steps left": left.count(),
        "runs left twice": left.values("run").annotate(n=Count("id")).filter(n__gt=1).count(),
    }
    ok = (advanced == due_runs == checks["runs now at the second delay"] == checks["messages"]
          == checks["delay steps left"] and not checks["runs still due"] and not duplicates
          and not checks["runs left twice"])
    return {"elapsed": elapsed, "rate": advanced / elapsed if elapsed else 0, "checks": checks, "ok": ok}


def time_now():
    from apps.core import clock

    return clock.now()


def bench_lookup(tenant, runs: int, lookups: int) -> dict:
    from apps.journeys.models import JourneyRun
    from apps.journeys.services import runs_for_events
    from apps.recipients.models import Recipient
    from django.db import transaction

    first = Recipient.objects.filter(tenant=tenant).order_by("id").values_list("id", flat=True).first()

    class _Event:
        def __init__(self, recipient_id):
            self.tenant_id, self.recipient_id, self.name = tenant.pk, recipient_id, "order.paid"

    timings, matched = [], 0
    for _ in range(lookups):
        event = _Event(first + random.randrange(runs))  # noqa: S311 - not security
        started = time.perf_counter()
        with transaction.atomic():
            found = runs_for_events(events=[event], now=time_now())[(tenant.pk, event.recipient_id)]
            waiting = [r for r in found
                       if r.status == JourneyRun.Status.WAITING and r.wait_event == event.name]
            transaction.set_rollback(True)
        timings.append((time.perf_counter() - started) * 1000)
        matched += len(waiting) == 1
    timings.sort()
    return {"p50": statistics.median(timings), "p99": timings[int(len(timings) * 0.99) - 1],
            "max": timings[-1], "matched": matched, "lookups": lookups}


def report(args, advance: dict, lookup: dict) -> str:
    checks = "\n".join(f"| {name} | {value:,} |" for name, value in advance["checks"].items())
    return f"""# Journeys benchmark

{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {platform.node()} · {os.cpu_count()} cores ·
{args.runs:,} runs on delay steps ({args.due:,} due at once) + {args.runs:,} runs waiting for an event

## Advancing due runs (`journeys_advance_due`, batches of the default SIGNALBOX_JOURNEY_DUE_BATCH)

| | |
|---|---|
| time | {advance['elapsed']:.1f} s |
| steps/s | **{advance['rate']:,.0f}** (target ≥ 2,000) |
{checks}
| none lost or doubled | **{'yes' if advance['ok'] else 'NO'}** |

## Event → the runs it may reach (`runs_for_events`, one indexed query, in a transaction)

| lookups | matched one waiting run | p50 | p99 | max |
|---|---|---|---|---|
| {lookup['lookups']:,} | {lookup['matched']:,} | {lookup['p50']:.2f} ms | \
**{lookup['p99']:.2f} ms** (target < 10) | {lookup['max']:.2f} ms |
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=2_000)
    parser.add_argument("--db-name", default="signalbox_bench_journeys")
    parser.add_argument("--recipients", type=int, default=100_000, help="the broadcast's segment size")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/7", help="for the broadcast part")
    parser.add_argument("--broadcast-only", action="store_true")
    parser.add_argument("--skip-broadcast", action="store_true")
    args = parser.parse_args()
    if args.broadcast_only:
        sys.exit(broadcast_main(args))
    alphabet = string.ascii_letters + string.digits
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.db_name}",
           "DJANGO_SETTINGS_MODULE": "config.settings.prod", "DEBUG": "false", "LOG_LEVEL": "WARNING",
           "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(60)), "ALLOWED_HOSTS": "127.0.0.1"}
    env.pop("REDIS_URL", None)
    setup_database(args.db_name, env)
    os.environ.update(env)
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    # Sends are stored, not enqueued: delivery has its own benchmark.
    import apps.messaging.services as messaging_services

    messaging_services.enqueue_sends = lambda message_ids: None

    tenant, delays, waits = create_journeys()
    load(tenant, delays, waits, args.runs, args.due)
    advance = bench_advance(delays, args.due)
    log(f"advance: {advance['rate']:,.0f} steps/s, ok={advance['ok']}")
    lookup = bench_lookup(tenant, args.runs, args.lookups)
    log(f"lookup: p50 {lookup['p50']:.2f} ms, p99 {lookup['p99']:.2f} ms")
    text = report(args, advance, lookup)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "journeys-latest.md").write_text(text)
    print(text)
    broadcast_ok = args.skip_broadcast or subprocess.run(
        [sys.executable, __file__, "--broadcast-only", "--recipients", str(args.recipients),
         "--redis-url", args.redis_url], check=False).returncode == 0
    sys.exit(0 if advance["ok"] and broadcast_ok else 1)


# ---- broadcast: fan-out and delivery through real workers ------------------------------------

BROADCAST_LOAD_SQL = """
INSERT INTO recipients_recipient (tenant_id, external_id, email, phone, locale, timezone, attributes,
    created_at, updated_at)
SELECT %(tenant)s, 'b' || g, '', '', 'en', 'UTC',
    CASE WHEN g %% 2 = 0 THEN '{"plan": "pro"}' ELSE '{"plan": "free"}' END::jsonb, %(now)s, %(now)s
FROM generate_series(1, 2 * %(recipients)s) g;

INSERT INTO events_event (tenant_id, recipient_id, name, kind, properties, context, source, message_id,
    cancellation_key, occurred_at, received_at, timestamp_clamped, processed_at, created_at, updated_at)
SELECT %(tenant)s, r.id, 'app.opened', 'track', '{}', '{}', 'api', 'bench-' || r.id, '',
    %(now)s - interval '1 day', %(now)s, false, %(now)s, %(now)s, %(now)s
FROM recipients_recipient r WHERE r.tenant_id = %(tenant)s;
"""
# The broadcast's audience: half the loaded recipients (plan = pro), all active this week.
BROADCAST_SEGMENT = {"all": [
    {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"},
    {"field": "history.app.opened", "op": "within_last_days", "value": 7}]}


def broadcast_main(args) -> int:
    """The broadcast benchmark (see the module doc, step 5). Returns the exit status."""
    import json
    import signal
    import tempfile
    import urllib.request

    from delivery import DESIGNS, HOST, free_port

    db_name = "signalbox_bench_broadcast"
    alphabet = string.ascii_letters + string.digits
    env = {**os.environ, "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{db_name}",
           "REDIS_URL": args.redis_url, "DJANGO_SETTINGS_MODULE": "config.settings.prod", "DEBUG": "false",
           "LOG_LEVEL": "WARNING", "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(60)),
           "ALLOWED_HOSTS": HOST, "SIGNALBOX_HTTP_ALLOW_PRIVATE": "127.0.0.0/8",
           **DESIGNS["batched"]["env"]}
    setup_database(db_name, env)
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    import redis
    from apps.broadcasts import services
    from apps.broadcasts.models import Broadcast
    from apps.content.models import Template
    from apps.content.services import template_version_publish
    from apps.core import clock
    from apps.delivery.models import ProviderConfig
    from apps.messaging.models import Message
    from apps.segments.models import Segment
    from apps.segments.services import segment_recompute
    from apps.tenants.models import Tenant
    from django.db import connection

    redis.Redis.from_url(args.redis_url).flushdb()  # no tasks left from an earlier run
    workdir = Path(tempfile.mkdtemp(prefix="signalbox-bench-broadcast-"))
    sim_port = free_port()
    tenant = Tenant.objects.create(name="Bench", slug="bench")
    ProviderConfig.objects.create(tenant=tenant, name="simulator", channel="webhook", kind="webhook",
                                  settings={"url": f"http://{HOST}:{sim_port}/hook", "timeout": 10})
    template = Template.objects.create(tenant=tenant, key="news", name="News",
                                       webhook_body='{"to": "{{ recipient.external_id }}"}')
    template_version_publish(template=template, user=None)
    segment = Segment.objects.create(tenant=tenant, key="active-pros", name="Active pros",
                                     conditions=BROADCAST_SEGMENT)
    log(f"loading {2 * args.recipients:,} recipients (half of them pro) with an event each")
    with connection.cursor() as cursor:
        for statement in BROADCAST_LOAD_SQL.split(";\n"):
            if statement.strip():
                cursor.execute(statement, {"tenant": tenant.pk, "now": clock.now(),
                                           "recipients": args.recipients})
        cursor.execute("VACUUM ANALYZE")  # autocommit: outside a transaction
    log("segment: full recompute")
    evaluated = time.perf_counter()
    members = segment_recompute(segment)
    evaluated = time.perf_counter() - evaluated
    assert members == args.recipients, f"the segment has {members:,} members"

    procs = []

    def start(name, cmd):
        out = open(workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                      start_new_session=True))

    def simulator(path):
        with urllib.request.urlopen(f"http://{HOST}:{sim_port}/{path}", timeout=30) as resp:  # noqa: S310
            return json.loads(resp.read())

    try:
        start("simulator", [sys.executable, str(Path(__file__).parent / "delivery.py"), "--simulator",
                            str(sim_port), "0"])
        for n in range(DESIGNS["batched"]["processes"]):
            start(f"worker{n}", [str(Path(sys.executable).parent / "celery"), "-A", "config", "worker",
                                 "-Q", "default,delivery", "-n", f"bench-broadcast{n}@%h",
                                 "-P", *DESIGNS["batched"]["pool"], "--prefetch-multiplier", "1",
                                 "--without-heartbeat", "--without-mingle", "--without-gossip",
                                 "-l", "warning"])
        time.sleep(5)  # worker boot
        simulator("count")
        log(f"broadcast to {args.recipients:,} recipients")
        started = time.time()
        broadcast = services.broadcast_start(broadcast=services.broadcast_create(
            tenant=tenant, name="Bench", template_key="news", segment_key="active-pros"))
        deadline = time.monotonic() + max(600, args.recipients / 50)
        while simulator("count") < args.recipients and time.monotonic() < deadline:
            time.sleep(0.5)
        received = simulator("received")
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    broadcast = Broadcast.objects.get(pk=broadcast.pk)
    messages = Message.objects.filter(broadcast=broadcast)
    fan_out = ((broadcast.fanned_out_at - broadcast.started_at).total_seconds()
               if broadcast.fanned_out_at else None)
    last = max(received.values()) - started if received else None
    checks = {"messages": messages.count(),
              "recipients with a message": messages.values("recipient").distinct().count(),
              "received by the simulator": len(received)}
    ok = checks["messages"] == checks["recipients with a message"] == len(received) == args.recipients
    text = f"""# Broadcast benchmark

{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} · {platform.node()} · {os.cpu_count()} cores ·
a broadcast to a {args.recipients:,}-recipient segment; provider = the 0 ms simulator (webhook);
workers: {DESIGNS['batched']['processes']} × `celery worker -P {' '.join(DESIGNS['batched']['pool'])}`
({', '.join(f"{k}={v}" for k, v in DESIGNS['batched']['env'].items())}), fan-out pages of the default
SIGNALBOX_BROADCAST_PAGE. The segment: `plan = pro` and `app.opened` in the last 7 days, over
{2 * args.recipients:,} recipients with one event each (half match).

| | |
|---|---|
| segment evaluation (full recompute, chunks of SIGNALBOX_SEGMENT_CHUNK) | **{evaluated:.1f} s** \
({2 * args.recipients / evaluated:,.0f} recipients/s) |
| fan-out (messages created) | {f"{fan_out:.1f} s" if fan_out is not None else "not finished"} |
| messages created/s | **{f"{args.recipients / fan_out:,.0f}" if fan_out else "—"}** |
| start → last send at the simulator | **{f"{last:.1f} s" if last is not None else "—"}** |
| sends/s over that time | {f"{len(received) / last:,.0f}" if last else "—"} |
""" + "\n".join(f"| {name} | {value:,} |" for name, value in checks.items()) + f"""
| one message per recipient, every one received | **{'yes' if ok else 'NO'}** |
"""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "broadcast-latest.md").write_text(text)
    print(text)
    log(f"logs in {workdir}")
    return 0 if ok else 1


if __name__ == "__main__":
    main()
