#!/usr/bin/env python
"""Delivery benchmark: API accepted → provider called, with a real worker, PostgreSQL and Redis.

    .venv/bin/python bench/delivery.py            # full run, about 6 minutes
    .venv/bin/python bench/delivery.py --quick    # about 2 minutes

For each design and each simulator latency (0 ms and 50 ms):

1. Restarts the local provider simulator (this file with `--simulator`: an asyncio HTTP server
   that waits `latency` before answering 200 and records when each message's request arrived,
   by its `webhook-id` header) and the Celery worker with the design's settings.
2. Throughput: POSTs N messages to /api/v1/messages (1,000 recipients a request, two at a
   time) and waits until the simulator has received every one. messages/s = N / (last
   received − first request sent).
3. Latency: single-recipient POSTs at a steady rate (open model: requests leave on schedule
   whatever the answers do) and, per message, accept (202 received) → request received by
   the simulator; p50 / p99 over the messages after a warm-up.

Designs:
- `batched` (ours): SIGNALBOX_SEND_BATCH messages per task, each batch's provider calls in
  SIGNALBOX_SEND_THREADS threads; 2 worker processes (one per core: the ORM work is CPU and
  holds the GIL), each `-P threads -c 16` (tasks wait on providers, so threads overlap them).
- `naive`: one task per message (SIGNALBOX_SEND_BATCH=1, no threads), default prefork
  (concurrency = cores).

Writes the report to bench/results/delivery-latest.md. Uses PostgreSQL `signalbox_bench_delivery`
(dropped and recreated) and Redis on 127.0.0.1; only 127.0.0.1 is ever contacted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import signal
import statistics
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from ingest import HOST, PG_ADMIN_URL, free_port, log, percentile, read_response

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
BIN = Path(sys.executable).parent

DESIGNS = {  # worker processes, each `celery worker -P <pool>`, and their settings
    "batched": {"env": {"SIGNALBOX_SEND_BATCH": "50", "SIGNALBOX_SEND_THREADS": "50"},
                "pool": ["threads", "-c", "16"], "processes": 2},
    "naive": {"env": {"SIGNALBOX_SEND_BATCH": "1", "SIGNALBOX_SEND_THREADS": "1"},
              "pool": ["prefork", "-c", "2"], "processes": 1},
}


# ---- the provider simulator (a subprocess) ---------------------------------------------------

def simulator_main(port: int, latency_ms: float) -> None:
    received: dict[str, float] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lower = head.lower()
                length = 0
                if b"content-length:" in lower:
                    start = lower.index(b"content-length:") + 15
                    length = int(lower[start:lower.index(b"\r\n", start)])
                if length:
                    await reader.readexactly(length)
                now = time.time()
                if head.startswith(b"GET /received"):
                    body = json.dumps(received).encode()
                elif head.startswith(b"GET /count"):
                    body = str(len(received)).encode()
                else:
                    if b"webhook-id:" in lower:
                        start = lower.index(b"webhook-id:") + 11
                        received.setdefault(head[start:head.index(b"\r\n", start)].strip().decode(), now)
                    if latency_ms:
                        await asyncio.sleep(latency_ms / 1000)
                    body = b'{"ok":true}'
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, HOST, port, backlog=4096)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


# ---- the benchmark -------------------------------------------------------------------------

class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="signalbox-bench-delivery-"))
        alphabet = string.ascii_letters + string.digits
        self.env = {
            **os.environ,
            "DATABASE_URL": f"postgres://postgres@127.0.0.1:5432/{args.db_name}",
            "REDIS_URL": args.redis_url,
            "DJANGO_SETTINGS_MODULE": "config.settings.prod",
            "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(60)),
            "ALLOWED_HOSTS": HOST, "SECURE_SSL_REDIRECT": "false", "DEBUG": "false",
            "LOG_LEVEL": "WARNING", "SIGNALBOX_HTTP_ALLOW_PRIVATE": "127.0.0.0/8",
        }
        self.api_port, self.sim_port = free_port(), free_port()
        self.procs: dict[str, subprocess.Popen] = {}
        self.key = ""
        self.results: list[dict] = []

    # processes

    def manage(self, *argv: str) -> str:
        proc = subprocess.run([sys.executable, "manage.py", *argv], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=600)
        if proc.returncode:
            sys.exit(f"manage.py {' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def start(self, name: str, cmd: list[str], env: dict | None = None) -> None:
        self.stop(name)
        out = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.procs[name] = subprocess.Popen(cmd, cwd=ROOT, env=env or self.env, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is None or proc.poll() is not None:
            return
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def wait_http(self, url: str, what: str) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - 127.0.0.1 only
                    return
            except OSError:
                time.sleep(0.2)
        sys.exit(f"{what} did not answer {url} within 60 s (logs in {self.workdir})")

    def setup(self) -> None:
        import psycopg

        log(f"recreating database {self.args.db_name}")
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.args.db_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.args.db_name}"')
        self.manage("migrate", "--noinput")
        out = self.manage("seed_demo", "--json")
        self.key = json.loads(out[out.index("{"):])["secret_key"]
        # The simulator as the demo tenant's only webhook provider.
        self.manage("shell", "-c", (
            "from apps.delivery.models import ProviderConfig as P\n"
            "from apps.tenants.models import Tenant\n"
            "t = Tenant.objects.get(slug='acme')\n"
            "P.objects.filter(tenant=t, channel='webhook').update(enabled=False)\n"
            # Delivery alone: the demo's quiet hours, caps and rules would defer the messages
            # (bench/policy.py measures what policy adds).
            "from apps.policy.models import Cap, PolicySettings, SuppressionRule\n"
            "for model in (Cap, PolicySettings, SuppressionRule):\n"
            "    model.objects.filter(tenant=t).delete()\n"
            f"P.objects.create(tenant=t, name='simulator', channel='webhook', kind='webhook', "
            f"settings={{'url': 'http://{HOST}:{self.sim_port}/hook', 'timeout': 10}})\n"))
        self.start_web(self.env)
        # Create every recipient up front (scheduled far ahead: never sent), so that runs compare
        # sending, not first-time recipient creation.
        asyncio.run(self.post_bulk(self.args.messages, send_at="2099-01-01T00:00:00Z"))

    def start_web(self, env: dict) -> None:
        if self.args.server == "gunicorn":
            cmd = [str(BIN / "gunicorn"), "config.wsgi", "-b", f"{HOST}:{self.api_port}", "--worker-class",
                   "gthread", "--workers", "2", "--threads", "4", "--log-level", "warning"]
        else:
            cmd = [str(BIN / "granian"), "--interface", "wsgi", "--host", HOST, "--port", str(self.api_port),
                   "--workers", "2", "--blocking-threads", "4", "--no-ws", "--log-level", "warning",
                   "config.wsgi:application"]
        self.start("web", cmd, env)
        self.wait_http(f"http://{HOST}:{self.api_port}/healthz", self.args.server)

    def vacuum(self) -> None:
        """Every row starts from a vacuumed, analysed database (the PostgreSQL here may run with
        autovacuum off, and each run leaves tens of thousands of dead message rows)."""
        import psycopg

        url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.args.db_name
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")

    def start_run(self, design: str, latency_ms: float) -> None:
        self.vacuum()
        self.start("simulator", [sys.executable, __file__, "--simulator", str(self.sim_port),
                                 str(latency_ms)])
        self.wait_http(f"http://{HOST}:{self.sim_port}/count", "the simulator")
        for name in [n for n in self.procs if n.startswith("worker")]:
            self.stop(name)
        env = {**self.env, **DESIGNS[design]["env"]}
        self.start_web(env)  # the API enqueues SIGNALBOX_SEND_BATCH messages per task
        for n in range(DESIGNS[design]["processes"]):
            self.start(f"worker{n}", [str(BIN / "celery"), "-A", "config", "worker", "-Q", "delivery",
                                      "-n", f"bench{n}@%h", "-P", *DESIGNS[design]["pool"],
                                      "--prefetch-multiplier", "1", "--without-heartbeat",
                                      "--without-mingle", "--without-gossip", "-l", "warning"], env)
        time.sleep(3)  # worker boot

    def received(self) -> dict[str, float]:
        url = f"http://{HOST}:{self.sim_port}/received"
        with urllib.request.urlopen(url, timeout=30) as resp:  # noqa: S310 - 127.0.0.1 only
            return json.loads(resp.read())

    def count(self) -> int:
        with urllib.request.urlopen(f"http://{HOST}:{self.sim_port}/count", timeout=10) as resp:  # noqa: S310
            return int(resp.read())

    # load

    def request(self, body: dict) -> bytes:
        payload = json.dumps(body).encode()
        return (f"POST /api/v1/messages HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {self.key}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n\r\n"
                ).encode() + payload

    @staticmethod
    def message(recipients: list[str], **extra) -> dict:
        return {"recipients": recipients, "channel": "webhook",
                "content": {"webhook": {"body": {"event": "bench"}}}, **extra}

    async def post_bulk(self, n: int, **extra) -> list[int]:
        """n messages (to recipients r0…), 1,000 per request, two connections; accepted ids."""
        chunks = [[f"r{i}" for i in range(start, min(n, start + 1000))] for start in range(0, n, 1000)]
        ids: list[int] = []

        async def connection() -> None:
            reader, writer = await asyncio.open_connection(HOST, self.api_port)
            while chunks:
                writer.write(self.request(self.message(chunks.pop(0), **extra)))
                status, body, _ = await read_response(reader)
                if status != 202:
                    sys.exit(f"the API answered {status}: {body[:300]!r}")
                ids.extend(m["id"] for m in json.loads(body)["messages"])
            writer.close()

        await asyncio.gather(connection(), connection())
        return ids

    async def post_steady(self, rate: float, seconds: float) -> list[tuple[int, float, float]]:
        """Single-message POSTs leaving on schedule; (id, scheduled, 202 received) each."""
        free: asyncio.Queue = asyncio.Queue()
        for _ in range(16):
            free.put_nowait(await asyncio.open_connection(HOST, self.api_port))
        done: list[tuple[int, float, float]] = []
        count = int(rate * seconds)

        async def one(i: int, scheduled: float) -> None:
            reader, writer = await free.get()
            try:
                writer.write(self.request(self.message([f"r{i % self.args.messages}"])))
                status, body, _ = await read_response(reader)
                if status == 202:
                    done.append((json.loads(body)["messages"][0]["id"], scheduled, time.time()))
            finally:
                free.put_nowait((reader, writer))

        start = time.time() + 0.1
        tasks = []
        for i in range(count):
            scheduled = start + i / rate
            await asyncio.sleep(max(0.0, scheduled - time.time()))
            tasks.append(asyncio.create_task(one(i, scheduled)))
        await asyncio.gather(*tasks)
        return done

    def wait_received(self, n: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.count() >= n:
                return True
            time.sleep(0.1)
        return False

    # one design × latency

    def run(self, design: str, latency_ms: float) -> None:
        n = self.args.messages if design == "batched" or latency_ms == 0 else self.args.naive_slow_messages
        log(f"{design}, {latency_ms:.0f} ms: starting")
        self.start_run(design, latency_ms)
        row = {"design": design, "latency_ms": latency_ms, "messages": n, "load": os.getloadavg()[0]}
        started = time.time()
        ids = asyncio.run(self.post_bulk(n))
        accepted = time.time()
        if not self.wait_received(n, timeout=self.args.timeout):
            row["error"] = f"only {self.count()} of {n} received within {self.args.timeout:.0f} s"
            self.results.append(row)
            return
        received = self.received()
        last = max(received[f"msg-{i}"] for i in ids)
        row["throughput"] = n / (last - started)
        row["api_seconds"] = accepted - started
        if design == "batched" or latency_ms == 0:
            before = self.count()
            sent = asyncio.run(self.post_steady(self.args.rate, self.args.seconds))
            self.wait_received(before + len(sent), timeout=60)
            received = self.received()
            warm = int(self.args.rate * 2)  # the first two seconds are warm-up
            lat = sorted((received[f"msg-{i}"] - answered) * 1000 for i, _, answered in sent[warm:]
                         if f"msg-{i}" in received)
            lat_sched = sorted((received[f"msg-{i}"] - scheduled) * 1000 for i, scheduled, _ in sent[warm:]
                               if f"msg-{i}" in received)
            row.update(rate=self.args.rate, latency_n=len(lat), lost=len(sent[warm:]) - len(lat),
                       p50=statistics.median(lat), p99=percentile(lat, 0.99),
                       p50_sched=statistics.median(lat_sched), p99_sched=percentile(lat_sched, 0.99))
        self.results.append(row)
        log(f"{design}, {latency_ms:.0f} ms: {row}")

    def report(self, elapsed: float) -> str:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                                text=True, check=False).stdout.strip() or "unknown"
        lines = [
            "# Delivery benchmark", "",
            f"`{' '.join(['.venv/bin/python', 'bench/delivery.py', *sys.argv[1:]])}` — "
            f"{time.strftime('%Y-%m-%d %H:%M')}, commit {commit}, {os.cpu_count()} cores, "
            f"Python {platform.python_version()}, {elapsed / 60:.1f} min in all.", "",
            f"{SERVERS[self.args.server]}; PostgreSQL and Redis on the same machine; "
            "provider = "
            "the local simulator (webhook channel, signed POST). Workers: "
            + "; ".join(f"{name} {d['processes']} × `celery worker -P {' '.join(d['pool'])}` ("
                        + ", ".join(f"{k}={v}" for k, v in d["env"].items()) + ")"
                        for name, d in DESIGNS.items())
            + ". `load` is the 1-minute load average when the run started (2 = both cores busy).", "",
            "| design | simulator latency | load | messages | delivered/s (accept → received) "
            f"| API accept time | p50 / p99 at {self.args.rate:.0f}/s, from the 202 "
            "| p50 / p99 from the request sent |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in self.results:
            head = f"| {r['design']} | {r['latency_ms']:.0f} ms | {r['load']:.1f} | {r['messages']:,} | "
            if "error" in r:
                lines.append(f"{head}{r['error']} | | | |")
                continue
            lat = (f"{r['p50']:.0f} / {r['p99']:.0f} ms ({r['latency_n']} msgs, {r['lost']} not received)"
                   if "p50" in r else "not run (see below)")
            sched = f"{r['p50_sched']:.0f} / {r['p99_sched']:.0f} ms" if "p50" in r else ""
            lines.append(f"{head}{r['throughput']:,.0f} | {r['api_seconds']:.1f} s | {lat} | {sched} |")
        by = {(r["design"], r["latency_ms"]): r.get("throughput") for r in self.results}
        lines.append("")
        for latency in self.args.latencies:
            ours, naive = by.get(("batched", latency)), by.get(("naive", latency))
            if ours and naive:
                lines.append(f"- {latency:.0f} ms: batched / naive = **{ours / naive:.1f}×**")
        slow = self.args.naive_slow_messages
        lines += ["", f"The naive design at a non-zero latency gets {slow:,} messages (it would take "
                  "minutes to deliver 10,000) and no latency run (it cannot keep up with "
                  f"{self.args.rate:.0f}/s)."]
        return "\n".join(lines) + "\n"

    def main(self) -> None:
        started = time.time()
        try:
            self.setup()
            for design in self.args.designs:
                for latency in self.args.latencies:
                    self.run(design, latency)
        finally:
            for name in list(self.procs):
                self.stop(name)
        text = self.report(time.time() - started)
        print(text)
        RESULTS.mkdir(exist_ok=True)
        Path(self.args.output).write_text(text)
        log(f"report written to {self.args.output}")


SERVERS = {"granian": "granian (WSGI) 2 workers × 4 blocking threads",
           "gunicorn": "gunicorn 2 gthread workers × 4 threads"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="2,000 messages, 10 s latency runs")
    p.add_argument("--server", choices=["granian", "gunicorn"], default="granian",
                   help="web server (default granian, as the README runs it; gunicorn gthread to compare)")
    p.add_argument("--messages", type=int, default=10_000)
    p.add_argument("--naive-slow-messages", type=int, default=2_000,
                   help="messages for the naive design at a non-zero latency (default 2000)")
    p.add_argument("--latencies", type=lambda s: [float(x) for x in s.split(",")], default=[0.0, 50.0])
    p.add_argument("--designs", type=lambda s: s.split(","), default=["batched", "naive"])
    p.add_argument("--rate", type=float, default=100.0, help="messages/s of the latency run")
    p.add_argument("--seconds", type=float, default=30.0, help="length of the latency run")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for delivery")
    p.add_argument("--db-name", default="signalbox_bench_delivery")
    p.add_argument("--redis-url", default="redis://127.0.0.1:6379/6")
    p.add_argument("--output", default=str(RESULTS / "delivery-latest.md"))
    args = p.parse_args(argv)
    if args.quick:
        args.messages, args.naive_slow_messages, args.seconds = 2_000, 500, 10.0
    return args


if __name__ == "__main__":
    if sys.argv[1:2] == ["--simulator"]:
        simulator_main(int(sys.argv[2]), float(sys.argv[3]))
    else:
        Bench(parse_args(sys.argv[1:])).main()
