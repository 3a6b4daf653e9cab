#!/usr/bin/env python
"""A/B of policy's cost for a message decided alone: this checkout against another, deciding
lone messages in turn, so that the machine's drift hits both alike (on the 2-core VM of
docs/performance.md the same code's p50 moves by 40 % within minutes, more than most changes).

    git worktree add /tmp/base HEAD~1 && ln -s "$PWD/.venv" /tmp/base/.venv
    .venv/bin/python bench/policy_ab.py /tmp/base                # about 2 minutes
    .venv/bin/python bench/policy_ab.py /tmp/base --rounds 60 --chunk 100

Seeds the database `signalbox_policy_ab` as bench/policy.py seeds its own (this checkout's
migrations: the other must have the same schema), then starts a worker in each checkout (this
file with --worker, run by that checkout's .venv with its code and its bench/policy.py) and asks
them in turn, the first one alternating, for `--chunk` lone messages per round. Prints each one's
p50 and the median of the rounds' ratios of p50s (this checkout over the other): below 1, this
checkout is faster.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

DB = "signalbox_policy_ab"
HERE = Path(__file__).resolve()


def worker() -> None:
    """Decide `n` lone messages for each line `n` read; answer each line with their timings."""
    sys.path.insert(0, str(Path.cwd() / "bench"))
    import policy as bench

    os.environ.update({"DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{DB}",
                       "REDIS_URL": "redis://127.0.0.1:6379/8", "LOG_LEVEL": "WARNING",
                       "DJANGO_SETTINGS_MODULE": "config.settings.prod", "SECRET_KEY": "policy-ab-" * 5,
                       "ALLOWED_HOSTS": "127.0.0.1"})
    sys.path.insert(0, str(Path.cwd()))
    import django

    django.setup()
    from apps.recipients.models import Recipient

    recipient = Recipient.objects.select_related("tenant").get(external_id="bench-user")
    for _ in range(3):  # prepares the connection's statements, as bench/policy.py's warm-up
        for n in (50, 1):
            messages = bench.claimed(recipient.tenant, recipient, n)
            bench.decide(messages)
            bench.release(messages)
    print("ready", flush=True)
    for line in sys.stdin:
        timings = []
        for message in bench.claimed(recipient.tenant, recipient, int(line)):
            started = time.perf_counter()
            bench.decide([message])
            timings.append((time.perf_counter() - started) * 1000)
            bench.release([message])
        print(json.dumps(timings), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("other", type=Path, help="the other checkout (with a .venv)")
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--chunk", type=int, default=100, help="lone messages per checkout and round")
    args = parser.parse_args()
    sys.path.insert(0, str(HERE.parent))
    import policy as bench

    bench.setup(bench.parse_args(["--db-name", DB]))
    bench.seed()
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    connection.close()
    checkouts = {"this": HERE.parent.parent, "other": args.other.resolve()}
    workers = {name: subprocess.Popen([str(root / ".venv/bin/python"), str(HERE), "--worker"], cwd=root,
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
               for name, root in checkouts.items()}
    for process in workers.values():
        assert process.stdout.readline().strip() == "ready"
    timings, ratios = {name: [] for name in workers}, []
    for round_ in range(args.rounds):
        p50 = {}
        for name in (["this", "other"] if round_ % 2 else ["other", "this"]):
            workers[name].stdin.write(f"{args.chunk}\n")
            workers[name].stdin.flush()
            chunk = json.loads(workers[name].stdout.readline())
            timings[name] += chunk
            p50[name] = statistics.median(chunk)
        ratios.append(p50["this"] / p50["other"])
    for process in workers.values():
        process.stdin.close()
        process.wait()
    for name, values in timings.items():
        print(f"{name:5} {checkouts[name]}: p50 {statistics.median(values):.3f} ms, {len(values)} messages")
    print(f"this / other, median of {args.rounds} rounds' p50 ratios: {statistics.median(ratios):.3f} "
          f"(rounds from {min(ratios):.3f} to {max(ratios):.3f})")


if __name__ == "__main__":
    worker() if sys.argv[1:] == ["--worker"] else main()
