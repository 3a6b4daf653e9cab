#!/usr/bin/env python
"""CPU per ingest request inside one process: Django's test client posting to the real views
with production settings against PostgreSQL (no web server, no network, no load generator).

    .venv/bin/python bench/ingest_cpu.py batch 200    # Segment /v1/batch, 100 events a request
    .venv/bin/python bench/ingest_cpu.py single 1000  # POST /api/v1/events, one event
    .venv/bin/python bench/ingest_cpu.py batch 100 --profile cumulative   # and a cProfile listing

Recreates the database `signalbox_ingest_cpu`; creates 10,000 recipients first (as
bench/ingest.py's priming does), warms up, then prints the process CPU and wall time per
request, and the CPU the PostgreSQL backend serving it used per request (from /proc). What
bench/ingest.py measures under load, without the noise of the other processes.
"""

import argparse
import base64
import cProfile
import io
import json
import os
import pstats
import random
import secrets
import sys
import time
import uuid
from pathlib import Path

import psycopg

DB = "signalbox_ingest_cpu"
RECIPIENTS = 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=["batch", "single"])
    parser.add_argument("requests", type=int)
    parser.add_argument("--profile", metavar="SORT", help="also print a cProfile listing sorted by SORT")
    args = parser.parse_args()
    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DB}"')
    os.environ.update({"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
                       "REDIS_URL": "redis://127.0.0.1:6379/7",
                       "DJANGO_SETTINGS_MODULE": "config.settings.prod",
                       "SECRET_KEY": secrets.token_urlsafe(50), "ALLOWED_HOSTS": "testserver",
                       "LOG_LEVEL": "WARNING",
                       "CONN_MAX_AGE": "86400"})  # one PostgreSQL backend for the run: its CPU is read
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import close_old_connections
    from django.test import Client

    call_command("migrate", "--noinput", verbosity=0)
    out = io.StringIO()
    call_command("seed_demo", "--json", stdout=out)
    text = out.getvalue()
    keys = json.loads(text[text.index("{"):])
    client = Client()
    write = "Basic " + base64.b64encode(f"{keys['write_key']}:".encode()).decode()

    def batch(n: int, users) -> str:
        return json.dumps({"batch": [{
            "type": "track", "event": "Order Completed", "userId": f"bench-user-{user}",
            "messageId": str(uuid.uuid4()), "timestamp": "2026-11-24T06:00:00.000+00:00",
            "properties": {"order_id": f"o-{n}-{j}", "total": 42.5}} for j, user in enumerate(users)],
            "sentAt": "2026-11-24T06:00:01.000+00:00"})

    def post_batch(n: int, users=None):
        users = users or [random.randrange(RECIPIENTS) for _ in range(100)]
        return client.post("/v1/batch", batch(n, users), content_type="application/json",
                           HTTP_AUTHORIZATION=write, secure=True)

    def post_single(n: int):
        user = random.randrange(RECIPIENTS)
        body = json.dumps({"name": "order.completed", "recipient": f"bench-user-{user}",
                           "properties": {"order_id": f"o-{n}", "total": 42.5}})
        return client.post("/api/v1/events", body, content_type="application/json",
                           HTTP_AUTHORIZATION=f"Bearer {keys['secret_key']}", secure=True)

    for n in range(RECIPIENTS // 100):
        post_batch(n, range(n * 100, n * 100 + 100))
    post = post_batch if args.scenario == "batch" else post_single

    def go(n: int):
        # A server's request_started runs this (the test client leaves it out): the connection's
        # age and health check, as in every request under granian.
        close_old_connections()
        return post(n)

    for n in range(100):
        response = go(n)
        assert response.status_code in (200, 202), response.content
    from django.db import connection

    backend = connection.connection.info.backend_pid  # the PostgreSQL process serving this one
    cpu, pg, wall = time.process_time(), process_cpu(backend), time.perf_counter()
    for n in range(args.requests):
        go(n)
    cpu, pg, wall = (time.process_time() - cpu, process_cpu(backend) - pg, time.perf_counter() - wall)
    per = 1000 / args.requests
    print(f"{args.scenario}: {cpu * per:.2f} ms CPU here, {pg * per:.2f} ms in PostgreSQL, "
          f"{wall * per:.2f} ms wall per request ({args.requests} requests)")
    if args.profile:
        profile = cProfile.Profile(time.process_time)  # CPU, not the waits for PostgreSQL and Redis
        profile.enable()
        for n in range(args.requests):
            go(n)
        profile.disable()
        pstats.Stats(profile).sort_stats(args.profile).print_stats(40)


def process_cpu(pid: int) -> float:
    """Seconds of CPU a process has used (user + system, from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()
