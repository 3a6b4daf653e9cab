#!/usr/bin/env python
"""Event-ingestion benchmark: open-model (fixed arrival rate) load against the real web server.

    .venv/bin/python bench/ingest.py            # full run, about 3-4 minutes
    .venv/bin/python bench/ingest.py --quick    # about 1 minute

What it does, in order:

1. Drops and recreates the PostgreSQL database `signalbox_bench` (127.0.0.1:5432, user postgres),
   runs `manage.py migrate` and `manage.py seed_demo --json` with production settings.
2. Starts the web server as the README runs it (granian serving `config.wsgi`; `--server gunicorn`
   for comparison) on a free loopback port and waits for /healthz.
3. For each scenario and arrival rate, starts load-generator processes (this file with
   `--loadgen`; asyncio over raw HTTP/1.1 with keep-alive, request bytes pre-built) that send on a
   fixed schedule whatever the responses do. Latency is measured from the *scheduled* send time,
   so a slow server cannot hide its queueing (no coordinated omission). Every request has a
   deadline, every step a bounded count, and only 127.0.0.1 is targeted.
4. Checks that `events_event` holds exactly the events the server accepted.
5. Times a raw `COPY` of the same number of rows into `bench_copy (LIKE events_event INCLUDING
   ALL)`: the physical limit the HTTP path is compared with.
6. Prints a Markdown report and writes it to bench/results/ingest-latest.md.

Only the Python standard library plus packages the project already installs (psycopg, redis,
granian, gunicorn) are used.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import datetime as dt
import json
import math
import os
import platform
import random
import resource
import secrets
import shlex
import shutil
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"  # the only address this benchmark ever sends to
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
CELERY_EVENTS_QUEUE = "events"

SCENARIOS = {
    # name: method, path, expected status, events per successful request (0: count requests)
    "batch": {"title": "Segment batch `POST /v1/batch`", "expect": 200,
              "target_rate": 100, "target_p99_ms": 100.0},
    "single": {"title": "Native single event `POST /api/v1/events`", "expect": 202,
               "target_rate": 1000, "target_p99_ms": 25.0},
    "healthz": {"title": "Framework floor `GET /healthz`", "expect": 200,
                "target_rate": None, "target_p99_ms": None},
}


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def iso_now(offset_s: float = 0.0) -> str:
    """UTC ISO 8601 with milliseconds and an explicit offset: always 29 characters."""
    now = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=offset_s)
    return now.isoformat(timespec="milliseconds")


# =============================================================================================
# Load generator (runs in its own process: `ingest.py --loadgen`, spec on stdin)
# =============================================================================================

SENT_AT_SUFFIX = b'"}'


def build_requests(spec: dict) -> tuple[list[bytes], int, bool]:
    """Pre-built request bytes for one generator process.

    Returns (requests, events per request, whether each request ends with a sentAt to stamp).
    Batch bodies end with `"sentAt":"` so the send time (fixed length) is appended at send time.
    """
    scenario, n = spec["scenario"], spec["n_requests"]
    rnd = random.Random(spec["seed"])
    pool = spec["recipients"]
    hostport = f"{HOST}:{spec['port']}"
    tag = f"{spec['seed']:x}"
    out: list[bytes] = []
    if scenario == "healthz":
        req = f"GET /healthz HTTP/1.1\r\nHost: {hostport}\r\n\r\n".encode()
        return [req] * n, 0, False
    if scenario == "single":
        head = (f"POST /api/v1/events HTTP/1.1\r\nHost: {hostport}\r\n"
                f"Authorization: Bearer {spec['secret_key']}\r\n"
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n")
        for i in range(n):
            body = json.dumps({
                "name": "order.completed",
                "recipient": f"bench-user-{rnd.randrange(pool)}",
                "properties": {"order_id": f"ord-{tag}-{i}", "total": 42.5},
            }, separators=(",", ":")).encode()
            out.append(head.format(len(body)).encode() + body)
        return out, 1, False
    if scenario == "batch":
        auth = base64.b64encode(f"{spec['write_key']}:".encode()).decode()
        head = (f"POST /v1/batch HTTP/1.1\r\nHost: {hostport}\r\nAuthorization: Basic {auth}\r\n"
                "Content-Type: application/json\r\nContent-Length: {}\r\n\r\n")
        size = spec["batch_size"]
        stamp = iso_now(-1.0)
        sent_at_len = len(iso_now()) + len(SENT_AT_SUFFIX)
        prime = spec.get("prime", False)
        for i in range(n):
            items = [{
                "type": "track",
                "event": "Order Completed",
                "userId": f"bench-user-{(i * size + j) % pool if prime else rnd.randrange(pool)}",
                "messageId": str(uuid.uuid4()),
                "timestamp": stamp,
                "properties": {"order_id": f"ord-{tag}-{i}-{j}", "total": 42.5},
            } for j in range(size)]
            prefix = json.dumps({"batch": items}, separators=(",", ":"))[:-1] + ',"sentAt":"'
            prefix_b = prefix.encode()
            out.append(head.format(len(prefix_b) + sent_at_len).encode() + prefix_b)
        return out, size, True
    raise SystemExit(f"unknown scenario {scenario}")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    keep = not head.startswith(b"HTTP/1.0") and b"\r\nconnection: close" not in lower
    idx = lower.find(b"\r\ncontent-length:")
    if idx >= 0:
        end = lower.index(b"\r\n", idx + 2)
        length = int(head[idx + 17:end])
        body = await reader.readexactly(length) if length else b""
    elif b"\r\ntransfer-encoding: chunked" in lower:
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append(await reader.readexactly(size + 2))
        body = b"".join(p[:-2] for p in parts)
    else:
        body = await reader.read()
        keep = False
    return status, body, keep


async def run_load(spec: dict, requests: list[bytes], per_request_events: int, stamp_sent_at: bool,
                   start_wall: float) -> dict:
    loop = asyncio.get_running_loop()
    start = loop.time() + (start_wall - time.time()) + spec["phase"]
    interval = 1.0 / spec["rate"]
    warm_end = loop.time() + (start_wall - time.time()) + spec["warmup"]
    timeout = spec["timeout"]
    expect = spec["expect"]
    check_success = spec["scenario"] == "batch"
    port = spec["port"]
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    sem = asyncio.Semaphore(spec["max_conns"])
    st = {"lat": [], "lag": [], "statuses": {}, "errors": {}, "error_sample": "",
          "measured": 0, "ok_measured": 0, "ok_events_measured": 0, "ok_total": 0, "ok_events_total": 0,
          "unknown_outcome": 0, "last_done": 0.0, "conns_opened": 0, "retries": 0}

    def error(kind: str, sample: str = "") -> None:
        st["errors"][kind] = st["errors"].get(kind, 0) + 1
        if sample and not st["error_sample"]:
            st["error_sample"] = sample[:300]

    async def exchange(req: bytes) -> tuple[int, bytes]:
        for attempt in (0, 1):
            while attempt == 0 and idle and idle[-1][0].at_eof():  # closed by the server while idle
                idle.pop()[1].close()
            if attempt == 0 and idle:
                reader, writer = idle.pop()
                reused = True
            else:
                reader, writer = await asyncio.open_connection(HOST, port)
                st["conns_opened"] += 1
                reused = False
            try:
                if stamp_sent_at:
                    writer.writelines((req, iso_now().encode(), SENT_AT_SUFFIX))
                else:
                    writer.write(req)
                status, body, keep = await read_response(reader)
            except (ConnectionError, asyncio.IncompleteReadError):
                writer.close()
                # The server closed an idle keep-alive connection as we reused it: the request
                # never reached the application, so send it once more, on a new connection.
                if reused and attempt == 0:
                    st["retries"] += 1
                    continue
                raise
            except BaseException:
                writer.close()
                raise
            if keep:
                idle.append((reader, writer))
            else:
                writer.close()
            return status, body
        raise AssertionError("unreachable")

    async def one(sched: float, req: bytes) -> None:
        measured = sched >= warm_end
        if measured:
            st["measured"] += 1
        try:
            async with asyncio.timeout_at(sched + timeout):
                async with sem:
                    status, body = await exchange(req)
        except TimeoutError:
            error("timeout")
            st["unknown_outcome"] += 1
            return
        except Exception as exc:  # connection refused/reset, malformed answer
            error(type(exc).__name__, repr(exc))
            st["unknown_outcome"] += 1
            return
        done = loop.time()
        key = str(status)
        st["statuses"][key] = st["statuses"].get(key, 0) + 1
        ok = status == expect
        if ok and check_success:
            try:
                ok = json.loads(body).get("success") is True
            except ValueError:
                ok = False
        if not ok:
            error(f"HTTP {status}", body.decode(errors="replace"))
            return
        st["ok_total"] += 1
        st["ok_events_total"] += per_request_events
        if measured:
            st["ok_measured"] += 1
            st["ok_events_measured"] += per_request_events
            st["lat"].append(done - sched)
            st["last_done"] = max(st["last_done"], done - warm_end)

    tasks: set[asyncio.Task] = set()
    for i, req in enumerate(requests):
        sched = start + i * interval
        delay = sched - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        if sched >= warm_end:
            st["lag"].append(loop.time() - sched)
        task = loop.create_task(one(sched, req))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=timeout + 5)
    for task in list(tasks):  # cannot happen (every request has a deadline); belt and braces
        task.cancel()
        error("cancelled")
        st["unknown_outcome"] += 1
    for _, writer in idle:
        writer.close()
    st["lat"] = [round(x * 1000, 3) for x in st["lat"]]
    st["lag"] = [round(x * 1000, 3) for x in st["lag"]]
    st["n_requests"] = len(requests)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    st["cpu_s"] = usage.ru_utime + usage.ru_stime
    return st


def loadgen_main() -> None:
    spec = json.loads(sys.stdin.readline())
    requests, per_request_events, stamp = build_requests(spec)
    print("READY", flush=True)
    line = sys.stdin.readline().split()
    if not line or line[0] != "GO":
        return
    import uvloop  # libuv's loop: 2/3 of asyncio's CPU, which the generator takes from the server's cores

    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    result = asyncio.run(run_load(spec, requests, per_request_events, stamp, float(line[1])))
    # To a file: a report of ~100 KB through the stdout pipe was now and then cut short.
    Path(spec["report"]).write_text(json.dumps(result))


# =============================================================================================
# CPU accounting from /proc: who used the two cores during a measured window
# =============================================================================================

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _proc_table() -> dict[int, tuple[str, int, int]]:
    """pid -> (comm, ppid, utime+stime ticks) for every live process."""
    table = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                raw = fh.read()
        except OSError:
            continue
        lpar, rpar = raw.find(b"("), raw.rfind(b")")
        comm = raw[lpar + 1:rpar].decode(errors="replace")
        fields = raw[rpar + 2:].split()
        table[int(name)] = (comm, int(fields[1]), int(fields[11]) + int(fields[12]))
    return table


def _machine_busy_ticks() -> tuple[int, int]:
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]
    total = sum(values[:8])
    return total - idle, total


class CpuMeter:
    """CPU per process group over a window, sampled every half second so that a process exiting
    mid-window (a PostgreSQL backend closed at CONN_MAX_AGE) loses at most one interval."""

    GROUPS = ("web", "postgres", "redis", "loadgen")

    def __init__(self, web_pid: int | None, loadgen_pids: list[int]):
        self.web_pid, self.loadgen_pids = web_pid, set(loadgen_pids)
        self.ticks = dict.fromkeys(self.GROUPS, 0)
        self.last = self._read()
        self.started = time.monotonic()
        self.machine_before = _machine_busy_ticks()

    def _read(self) -> dict[int, tuple[str, int]]:
        out = {}
        for pid, (comm, ppid, ticks) in _proc_table().items():
            if self.web_pid and self.web_pid in (pid, ppid):
                out[pid] = ("web", ticks)
            elif comm == "postgres":
                out[pid] = ("postgres", ticks)
            elif comm.startswith("redis-server"):
                out[pid] = ("redis", ticks)
            elif pid in self.loadgen_pids:
                out[pid] = ("loadgen", ticks)
        return out

    def sample(self) -> None:
        now = self._read()
        for pid, (group, ticks) in now.items():
            previous = self.last.get(pid)
            self.ticks[group] += ticks - previous[1] if previous else ticks  # new: born since
        self.last = now

    def result(self) -> dict:
        """Per group: percent of one core (the machine has nproc x 100 %)."""
        self.sample()
        wall = time.monotonic() - self.started
        out = {k: 100.0 * v / CLK_TCK / wall for k, v in self.ticks.items()}
        busy, total = _machine_busy_ticks()
        out["machine"] = 100.0 * os.cpu_count() * (busy - self.machine_before[0]) / max(
            1, total - self.machine_before[1])
        out["other"] = max(0.0, out["machine"] - sum(out[k] for k in self.GROUPS))
        return out


# =============================================================================================
# Orchestration
# =============================================================================================


PROFILE_BUCKETS = [  # (label, substring of a frame's file) -- inclusive share of samples
    ("psycopg: queries and waits on PostgreSQL", "/psycopg/"),
    ("Django ORM: building SQL, model instances", "/django/db/models/"),
    ("Celery/kombu: publishing the task to Redis", "/kombu/"),
    ("redis-py (cache, broker)", "/redis/"),
    ("json encode/decode", "/json/"),
    ("Django request/response and middleware", "/django/core/handlers/"),
    ("Django REST framework", "/rest_framework/"),
    ("gunicorn (socket, parsing)", "/gunicorn/"),  # granian parses HTTP in Rust: no Python frames
]


def profile_summary(path: Path, top: int = 12) -> list[str]:
    """Markdown lines from py-spy's raw (collapsed) output: buckets, hot project code, hot leaves."""
    stacks = []
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    total = sum(c for _, c in stacks)
    if not total:
        return ["(no samples)"]

    def frame_file(frame: str) -> str:
        return frame[frame.rfind("(") + 1:].rsplit(":", 1)[0] if frame.endswith(")") else ""

    def short(frame: str) -> str:
        func, _, loc = frame.partition(" (")
        loc = loc.rstrip(")").rsplit(":", 1)[0]
        for marker in ("/site-packages/", f"{ROOT}/", "/lib/python3.11/"):
            loc = loc.split(marker, 1)[-1]
        return f"{func} ({loc})"

    buckets, project, leaves = {}, {}, {}
    for frames, count in stacks:
        files = [frame_file(f) for f in frames]
        for label, needle in PROFILE_BUCKETS:
            if any(needle in f for f in files):
                buckets[label] = buckets.get(label, 0) + count
        seen = set()
        for frame, file in zip(frames, files, strict=True):
            if f"{ROOT}/apps/" in file and frame not in seen:
                seen.add(frame)
                project[short(frame)] = project.get(short(frame), 0) + count
        leaves[short(frames[-1])] = leaves.get(short(frames[-1]), 0) + count

    def pct(n: int) -> str:
        return f"{100 * n / total:.0f} %"

    out = [f"{total:,} samples (100 Hz) of web server threads holding the GIL, i.e. running Python: where "
           "the workers' CPU went (py-spy itself costs some CPU, so the step's figures above are lower "
           "than in an unprofiled run).", "",
           "| where (inclusive) | share |", "|---|---:|"]
    out += [f"| {label} | {pct(n)} |" for label, n in sorted(buckets.items(), key=lambda x: -x[1])]
    out += ["", "| project function (inclusive) | share |", "|---|---:|"]
    out += [f"| `{name}` | {pct(n)} |" for name, n in sorted(project.items(), key=lambda x: -x[1])[:top]]
    out += ["", "| hottest leaf frames (self) | share |", "|---|---:|"]
    out += [f"| `{name}` | {pct(n)} |" for name, n in sorted(leaves.items(), key=lambda x: -x[1])[:top]]
    return out


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


class Bench:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.env = dict(os.environ)
        self.db_url = f"postgres://postgres@127.0.0.1:5432/{args.db_name}"
        alphabet = string.ascii_letters + string.digits
        self.env.update({
            "DATABASE_URL": self.db_url,
            "REDIS_URL": args.redis_url,
            "DJANGO_SETTINGS_MODULE": "config.settings.prod",
            "SECRET_KEY": "".join(secrets.choice(alphabet) for _ in range(60)),
            "ALLOWED_HOSTS": HOST,
            "SECURE_SSL_REDIRECT": "false",
            "DEBUG": "false",
            "LOG_LEVEL": "WARNING",
        })
        self.port = args.port or free_port()
        self.web: subprocess.Popen | None = None
        self.workdir = Path(tempfile.mkdtemp(prefix="signalbox-bench-"))
        self.server_log = self.workdir / "server.log"
        self.keys: dict = {}
        self.steps: list[dict] = []
        self.notes: list[str] = []
        self.accepted = {"batch": 0, "single": 0}  # events the server accepted (incl. warm-up)
        self.unknown_outcome = 0
        self.unknown_events = 0  # events in requests that got no answer: stored or not, unknown
        self.children: list[subprocess.Popen] = []
        self.step_counter = 0
        self.analyze_seconds = 0.0
        self.profiles: list[tuple[str, float, Path]] = []
        self.primed = ""
        self.seed = random.SystemRandom().randrange(1 << 30)

    # ---- database, Django, web server-------------------------------------------------------

    def pg(self, dbname: str | None = None, autocommit: bool = True):
        import psycopg

        url = PG_ADMIN_URL if dbname is None else PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + dbname
        return psycopg.connect(url, autocommit=autocommit)

    def setup_database(self) -> None:
        name = self.args.db_name
        log(f"recreating database {name}")
        with self.pg() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        self.manage("migrate", "--noinput")
        out = self.manage("seed_demo", "--json")
        self.keys = json.loads(out[out.index("{"):])
        log(f"seeded tenant {self.keys['tenant']}")

    def manage(self, *argv: str) -> str:
        cmd = [sys.executable, "manage.py", *argv]
        proc = subprocess.run(cmd, cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            sys.exit(f"`manage.py {' '.join(argv)}` failed ({proc.returncode}):\n"
                     f"{proc.stdout}\n{proc.stderr}")
        return proc.stdout

    def server_cmd(self) -> list[str]:
        a = self.args
        if a.server == "granian":  # what the README runs in production
            return [str(Path(sys.executable).parent / "granian"), "--interface", "wsgi", "--host", HOST,
                    "--port", str(self.port), "--workers", str(a.workers), "--blocking-threads",
                    str(a.threads), "--backlog", "2048", "--no-ws", "--log-level", "warning",
                    "config.wsgi:application"]
        cmd = [str(Path(sys.executable).parent / "gunicorn"), "config.wsgi", "-b", f"{HOST}:{self.port}",
               "--worker-class", a.worker_class, "--workers", str(a.workers)]
        if a.worker_class == "gthread":
            cmd += ["--threads", str(a.threads)]
        cmd += ["--backlog", "2048", "--keep-alive", "5", "--timeout", "30", "--no-control-socket",
                "--log-level", "warning", "--error-logfile", str(self.server_log)]
        return cmd

    def server_summary(self) -> str:
        a = self.args
        if a.server == "granian":
            return f"granian (WSGI), {a.workers} workers x {a.threads} blocking threads"
        if a.worker_class == "gthread":
            return f"gunicorn, {a.workers} gthread workers x {a.threads} threads"
        return f"gunicorn, {a.workers} {a.worker_class} workers"

    def start_server(self) -> None:
        cmd = self.server_cmd()
        log("starting " + " ".join(shlex.quote(c) for c in cmd))
        with self.server_log.open("ab") as errors:  # gunicorn also writes its --error-logfile there
            self.web = subprocess.Popen(cmd, cwd=ROOT, env=self.env, start_new_session=True,
                                        stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.web.poll() is not None:
                sys.exit(f"{self.args.server} exited with {self.web.returncode}:\n{self.tail_log()}")
            try:
                with urllib.request.urlopen(f"http://{HOST}:{self.port}/healthz", timeout=2) as resp:  # noqa: S310
                    if resp.status == 200:
                        break
            except (OSError, urllib.error.URLError):
                pass
            time.sleep(0.2)
        else:
            sys.exit(f"{self.args.server} did not answer /healthz within 60 s:\n{self.tail_log()}")
        time.sleep(1.0)  # let every worker finish booting before the first measured request
        log(f"{self.args.server} up on port {self.port} (pid {self.web.pid})")

    def tail_log(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.server_log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"

    def stop_server(self) -> None:
        proc, self.web = self.web, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)  # the process group the server was started in
            proc.wait(timeout=10)
        log(f"{self.args.server} stopped")

    # ---- one request outside the load generator (preflight) ---------------------------------

    def http(self, method: str, path: str, body: bytes | None, headers: dict) -> tuple[int, bytes]:
        req = urllib.request.Request(f"http://{HOST}:{self.port}{path}", data=body, method=method,  # noqa: S310
                                     headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310
                return resp.status, resp.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read()

    def preflight(self, scenario: str) -> str | None:
        """One request; None if the endpoint accepts it, else why the scenario is skipped."""
        if scenario == "healthz":
            status, body = self.http("GET", "/healthz", None, {})
            return None if status == 200 else f"/healthz answered {status}"
        if scenario == "batch":
            auth = base64.b64encode(f"{self.keys['write_key']}:".encode()).decode()
            payload = {"batch": [{"type": "track", "event": "Order Completed", "userId": "bench-user-0",
                                  "messageId": str(uuid.uuid4()), "timestamp": iso_now(-1),
                                  "properties": {"order_id": "preflight", "total": 42.5}}],
                       "sentAt": iso_now()}
            status, body = self.http("POST", "/v1/batch", json.dumps(payload).encode(),
                                     {"Authorization": f"Basic {auth}", "Content-Type": "application/json"})
            ok = status == 200 and body.strip().startswith(b"{") and json.loads(body).get("success") is True
        else:
            payload = {"name": "order.completed", "recipient": "bench-user-0",
                       "properties": {"order_id": "preflight", "total": 42.5}}
            status, body = self.http("POST", "/api/v1/events", json.dumps(payload).encode(),
                                     {"Authorization": f"Bearer {self.keys['secret_key']}",
                                      "Content-Type": "application/json"})
            ok = status == 202
        if ok:
            self.accepted[scenario] += 1
            return None
        return f"preflight answered HTTP {status}: {body[:200].decode(errors='replace')}"

    # ---- load steps --------------------------------------------------------------------------

    def run_step(self, scenario: str, rate: float, duration: float, warmup: float,
                 prime: bool = False) -> dict:
        """One arrival rate. `prime`: one pass of batches naming every recipient once, unreported."""
        a = self.args
        procs = 1 if prime else max(1, min(a.gen_procs, int(rate)))
        self.step_counter += 1
        specs = []
        for k in range(procs):
            n = int(round((warmup + duration) * rate / procs))
            if prime:
                n = math.ceil(a.recipients / a.batch_size)
                duration, warmup = n / rate, 0.0
            report = self.workdir / f"loadgen-{self.step_counter}-{k}.json"
            specs.append({"prime": prime, "report": str(report),
                "scenario": scenario, "port": self.port, "rate": rate / procs, "phase": k / rate,
                "warmup": warmup, "n_requests": n, "timeout": a.timeout, "max_conns": a.max_conns,
                "expect": SCENARIOS[scenario]["expect"], "recipients": a.recipients,
                "batch_size": a.batch_size, "seed": self.seed + self.step_counter * 1000 + k,
                "write_key": self.keys.get("write_key", ""), "secret_key": self.keys.get("secret_key", ""),
            })
        children = []
        for spec in specs:
            child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--loadgen"],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            self.children.append(child)
            children.append(child)
            child.stdin.write(json.dumps(spec) + "\n")
            child.stdin.flush()
        for child in children:
            if child.stdout.readline().strip() != "READY":
                sys.exit("load generator failed to start")
        start_wall = time.time() + 0.3
        for child in children:
            child.stdin.write(f"GO {start_wall!r}\n")
            child.stdin.flush()
        pids = [c.pid for c in children]
        gpid = self.web.pid if self.web else None
        time.sleep(max(0.0, start_wall + warmup - time.time()))
        meter = CpuMeter(gpid, pids)
        profiler = None if prime else self.start_profiler(scenario, rate, duration)
        while (left := start_wall + warmup + duration - time.time()) > 0:
            time.sleep(min(0.5, left))
            meter.sample()
        cpu = meter.result()
        results = []
        for child, spec in zip(children, specs, strict=True):
            child.communicate(timeout=a.timeout + 60)
            if child.returncode != 0:
                sys.exit(f"load generator exited with {child.returncode}")
            results.append(json.loads(Path(spec["report"]).read_text()))
            self.children.remove(child)
        if profiler:
            profiler.wait(timeout=60)
        return self.summarise(scenario, rate, duration, results, cpu, record=not prime)

    def start_profiler(self, scenario: str, rate: float, duration: float) -> subprocess.Popen | None:
        """py-spy on the web server and its workers for the measured window (--profile only)."""
        if not self.args.profile:
            return None
        out_dir = Path(self.args.profile_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        out = out_dir / f"{scenario}-{rate:g}.txt"
        self.profiles.append((scenario, rate, out))
        cmd = [self.args.py_spy, "record", "--pid", str(self.web.pid), "--subprocesses",
               "--nonblocking", "--gil", "--full-filenames", "--rate", "100",
               "--duration", str(max(1, int(duration))), "--format", "raw", "--output", str(out)]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def summarise(self, scenario: str, rate: float, duration: float, results: list[dict], cpu: dict,
                  record: bool = True) -> dict:
        lat = sorted(x for r in results for x in r["lat"])
        lag = sorted(x for r in results for x in r["lag"])
        statuses: dict[str, int] = {}
        errors: dict[str, int] = {}
        for r in results:
            for k, v in r["statuses"].items():
                statuses[k] = statuses.get(k, 0) + v
            for k, v in r["errors"].items():
                errors[k] = errors.get(k, 0) + v
        measured = sum(r["measured"] for r in results)
        ok_measured = sum(r["ok_measured"] for r in results)
        events = sum(r["ok_events_measured"] for r in results)
        window = max(measured / rate, max(r["last_done"] for r in results))
        ok_events_total = sum(r["ok_events_total"] for r in results)
        if scenario in self.accepted:
            self.accepted[scenario] += ok_events_total
        self.unknown_outcome += sum(r["unknown_outcome"] for r in results)
        per_req = self.args.batch_size if scenario == "batch" else 1
        if scenario in self.accepted:
            self.unknown_events += per_req * sum(r["unknown_outcome"] for r in results)
        step = {
            "scenario": scenario, "rate": rate, "duration": duration, "measured": measured,
            "ok": ok_measured, "errors": measured - ok_measured, "error_kinds": errors,
            "error_sample": next((r["error_sample"] for r in results if r["error_sample"]), ""),
            "statuses": statuses,
            "offered_eps": rate * per_req if scenario != "healthz" else 0,
            "achieved_rps": ok_measured / window if window else 0.0,
            "achieved_eps": events / window if window else 0.0,
            "p50": percentile(lat, 0.50), "p95": percentile(lat, 0.95), "p99": percentile(lat, 0.99),
            "max": lat[-1] if lat else float("nan"),
            "lag_p99": percentile(lag, 0.99), "lag_max": lag[-1] if lag else float("nan"),
            "conns": sum(r["conns_opened"] for r in results), "retries": sum(r["retries"] for r in results),
            "gen_cpu_s": sum(r["cpu_s"] for r in results), "cpu": cpu, "gen_procs": len(results),
        }
        if not record:
            log(f"primed {self.args.recipients:,} recipients with {measured} batches "
                f"({ok_events_total:,} events accepted)")
            return step
        self.steps.append(step)
        errs = ", ".join(f"{k}: {v}" for k, v in errors.items()) or "none"
        log(f"{scenario} @ {rate:g} req/s: {step['achieved_rps']:.1f} req/s ok, "
            f"p50 {step['p50']:.1f} / p99 {step['p99']:.1f} / max {step['max']:.1f} ms, errors {errs}; "
            f"CPU web {cpu['web']:.0f}% postgres {cpu['postgres']:.0f}% "
            f"loadgen {cpu['loadgen']:.0f}% machine {cpu['machine']:.0f}%")
        if step["error_sample"]:
            log(f"  first error: {step['error_sample'][:200]}")
        return step

    def prime(self) -> None:
        """Create every bench recipient through /v1/batch first, so measured steps see the steady
        state (recipients known) rather than first-sight inserts."""
        self.primed = "skipped"
        if self.preflight("batch") is not None:
            return
        rate = min(25.0, self.args.batch_rates[0])
        step = self.run_step("batch", rate, 0, 0, prime=True)
        self.analyze()
        self.primed = (f"before the first step, {step['ok']} batches at {rate:g} req/s named each of the "
                       f"{self.args.recipients:,} recipients once (those events are in the row check)")
        time.sleep(1.0)

    def analyze(self) -> None:
        """ANALYZE between steps, as autovacuum would. This server may run with autovacuum off, and
        a never-analysed table leaves the planner guessing (e.g. a tenant-wide scan for a lookup
        by message_id). --no-analyze measures that case."""
        if not self.args.analyze:
            return
        started = time.perf_counter()
        with self.pg(self.args.db_name) as conn:
            conn.execute("ANALYZE")
        self.analyze_seconds += time.perf_counter() - started

    @staticmethod
    def saturated(step: dict) -> bool:
        """The server did not keep up: a higher rate would only pile up queues (and time)."""
        return (step["achieved_rps"] < 0.9 * step["rate"] or step["errors"] > 0.05 * max(1, step["measured"])
                or math.isnan(step["p99"]) or step["p99"] > 2000)

    def run_scenarios(self) -> None:
        a = self.args
        for scenario in a.scenarios:
            reason = self.preflight(scenario)
            if reason:
                self.notes.append(f"{SCENARIOS[scenario]['title']}: skipped, {reason}")
                log(f"skipping {scenario}: {reason}")
                continue
            if scenario in ("batch", "single") and a.prime and not self.primed:
                self.prime()
            rates = {"batch": a.batch_rates, "single": a.single_rates, "healthz": a.healthz_rates}[scenario]
            for i, rate in enumerate(rates):
                self.analyze()
                step = self.run_step(scenario, rate, a.duration, a.warmup)
                if a.stop_on_saturation and self.saturated(step) and i + 1 < len(rates):
                    skipped = ", ".join(f"{r:g}" for r in rates[i + 1:])
                    self.notes.append(f"{scenario}: saturated at {rate:g} req/s; skipped {skipped} req/s.")
                    log(f"{scenario} saturated at {rate:g} req/s; skipping {skipped}")
                    break
                time.sleep(1.0)

    # ---- checks after the load --------------------------------------------------------------

    def count_rows(self) -> dict | None:
        with self.pg(self.args.db_name) as conn:
            if conn.execute("SELECT to_regclass('events_event')").fetchone()[0] is None:
                return None
            last, stable = -1, 0
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and stable < 2:  # wait for stragglers to commit
                count = conn.execute("SELECT count(*) FROM events_event").fetchone()[0]
                stable = stable + 1 if count == last else 0
                last = count
                time.sleep(0.5)
            by_source = dict(conn.execute(
                "SELECT source, count(*) FROM events_event GROUP BY source").fetchall())
            recipients = conn.execute(
                "SELECT count(*) FROM recipients_recipient WHERE external_id LIKE 'bench-user-%'"
            ).fetchone()[0]
        return {"total": last, "by_source": by_source, "recipients": recipients}

    def clean_queue(self) -> str:
        """Celery tasks the run enqueued stay in Redis (no worker runs here): remove those we added."""
        try:
            import redis

            client = redis.Redis.from_url(self.args.redis_url, socket_timeout=5)
            added = client.llen(CELERY_EVENTS_QUEUE) - self.queue_before
            if added <= 0:
                return "no Celery tasks were left in Redis"
            if self.args.keep_queue:
                return (f"{added} Celery task(s) left in Redis queue `{CELERY_EVENTS_QUEUE}` "
                        "(--keep-queue)")
            # kombu LPUSHes and consumers pop from the right: the newest `added` are ours.
            removed = 0
            while removed < added:
                got = client.lpop(CELERY_EVENTS_QUEUE, min(1000, added - removed))
                if not got:
                    break
                removed += len(got)
            return (f"the run enqueued {added} Celery task(s) on queue `{CELERY_EVENTS_QUEUE}` (no worker "
                    f"runs during the benchmark); removed them from Redis afterwards")
        except Exception as exc:  # a report line, never a failed benchmark
            return f"could not inspect the Celery queue: {exc}"

    def queue_length(self) -> int:
        try:
            import redis

            return redis.Redis.from_url(self.args.redis_url, socket_timeout=5).llen(CELERY_EVENTS_QUEUE)
        except Exception:
            return 0

    def copy_baseline(self, n_rows: int) -> dict | None:
        """Time a raw COPY of n_rows event-shaped rows into a LIKE-copy of events_event."""
        with self.pg(self.args.db_name) as conn:
            if conn.execute("SELECT to_regclass('events_event')").fetchone()[0] is None:
                return None
            cols = conn.execute(
                "SELECT column_name, is_nullable, column_default, is_identity "
                "FROM information_schema.columns WHERE table_name = 'events_event' "
                "AND table_schema = current_schema() ORDER BY ordinal_position"
            ).fetchall()
            tenant_id = conn.execute("SELECT id FROM tenants_tenant WHERE slug = %s",
                                     (self.keys.get("tenant", "acme"),)).fetchone()[0]
            recipient_ids = [r[0] for r in conn.execute(
                "SELECT id FROM recipients_recipient WHERE tenant_id = %s ORDER BY id LIMIT %s",
                (tenant_id, self.args.recipients)).fetchall()] or [None]
            sample = conn.execute(
                "SELECT name, kind, source, properties::text, context::text FROM events_event "
                "ORDER BY (source = 'segment') DESC, id DESC LIMIT 1").fetchone()
            name, kind, source, props, context = sample or (
                "Order Completed", "track", "segment", '{"order_id": "ord-1", "total": 42.5}', "{}")

            def esc(value: str) -> str:
                return (value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")
                        .replace("\r", "\\r"))

            now = dt.datetime.now(dt.UTC).isoformat()
            fixed = {"tenant_id": str(tenant_id), "name": esc(name), "kind": esc(kind), "source": esc(source),
                     "properties": esc(props), "context": esc(context), "cancellation_key": "",
                     "occurred_at": now, "received_at": now, "created_at": now, "updated_at": now,
                     "timestamp_clamped": "f", "processed_at": "\\N"}
            names, unknown = [], []
            for col, nullable, default, identity in cols:
                if col == "id" or identity == "YES":
                    continue
                if col not in fixed and col not in ("recipient_id", "message_id") and default is not None:
                    continue  # its default applies, as for the API's INSERT (e.g. process_error)
                names.append(col)
                if col not in fixed and col not in ("recipient_id", "message_id") and nullable == "NO" \
                        and default is None:
                    unknown.append(col)
            if unknown:
                self.notes.append(f"COPY baseline skipped: no value for NOT NULL column(s) {unknown}")
                return None
            rnd = random.Random(self.seed)
            chunks, buf, size = [], [], 0
            for _ in range(n_rows):
                row = []
                for col in names:
                    if col == "message_id":
                        row.append(uuid.uuid4().hex)
                    elif col == "recipient_id":
                        rid = rnd.choice(recipient_ids)
                        row.append("\\N" if rid is None else str(rid))
                    else:
                        row.append(fixed.get(col, "\\N"))
                line = "\t".join(row) + "\n"
                buf.append(line)
                size += len(line)
                if size > 1 << 20:
                    chunks.append("".join(buf).encode())
                    buf, size = [], 0
            if buf:
                chunks.append("".join(buf).encode())
            conn.execute("DROP TABLE IF EXISTS bench_copy")
            conn.execute("CREATE TABLE bench_copy (LIKE events_event INCLUDING ALL)")
            conn.execute("CHECKPOINT")
            cur = conn.cursor()
            column_list = ", ".join(f'"{c}"' for c in names)
            started = time.perf_counter()
            with conn.transaction(), cur.copy(f"COPY bench_copy ({column_list}) FROM STDIN") as copy:
                for chunk in chunks:
                    copy.write(chunk)
            elapsed = time.perf_counter() - started
            copied = conn.execute("SELECT count(*) FROM bench_copy").fetchone()[0]
            indexes = conn.execute(
                "SELECT count(*) FROM pg_indexes WHERE tablename = 'bench_copy'").fetchone()[0]
            conn.execute("DROP TABLE bench_copy")
        rps = copied / elapsed
        log(f"COPY baseline: {copied} rows in {elapsed:.2f} s = {rps:,.0f} rows/s ({indexes} indexes)")
        return {"rows": copied, "seconds": elapsed, "rows_per_s": rps, "indexes": indexes}

    # ---- report ------------------------------------------------------------------------------

    @staticmethod
    def code_version() -> str:
        """The commit measured, and whether the work tree differed from it (read-only git)."""
        def git(*argv: str) -> str:
            return subprocess.run(["git", "--no-optional-locks", *argv], cwd=ROOT, capture_output=True,
                                  text=True, timeout=30).stdout.rstrip("\n")
        try:
            head = git("log", "-1", "--format=%h %s")
            dirty = [line[3:] for line in git("status", "--porcelain", "--untracked-files=no").splitlines()
                     if not line[3:].startswith("bench/")]
        except (OSError, subprocess.SubprocessError):
            return "unknown (no git)"
        if not head:
            return "unknown (no git)"
        return f"`{head}`" + (f" plus uncommitted changes to {len(dirty)} file(s)" if dirty else "")

    def machine(self) -> dict:
        mem = subprocess.run(["free", "-g"], capture_output=True, text=True).stdout.splitlines()
        mem_total = next((line.split()[1] for line in mem if line.startswith("Mem:")), "?")
        cpu_model = "?"
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu_model = line.split(":", 1)[1].strip()
                    break
        try:
            with self.pg() as conn:
                pg_version = conn.execute("SHOW server_version").fetchone()[0]
                sync = conn.execute("SHOW synchronous_commit").fetchone()[0]
        except Exception:
            pg_version, sync = "?", "?"
        return {"nproc": os.cpu_count(), "mem_gib": mem_total, "cpu": cpu_model, "pg": pg_version,
                "sync_commit": sync, "python": platform.python_version()}

    def report(self, rows: dict | None, copy: dict | None, queue_note: str, elapsed: float) -> str:
        a = self.args
        m = self.machine()
        cmd = " ".join(shlex.quote(x) for x in [".venv/bin/python", "bench/ingest.py", *sys.argv[1:]])
        g = self.server_cmd()
        g = g[:-2] if self.args.server == "gunicorn" else g  # without the error log's temporary path
        g_display = " ".join(shlex.quote(x) for x in [f".venv/bin/{self.args.server}", *g[1:]])
        lines = [
            "# Ingest benchmark",
            "",
            f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; run took {elapsed:.0f} s",
            f"- Machine: nproc {m['nproc']} ({m['cpu']}), memory {m['mem_gib']} GiB (`free -g` total), "
            f"CPU already in use before the run {self.idle_cpu:.0f} %, "
            f"Python {m['python']}, PostgreSQL {m['pg']} (synchronous_commit={m['sync_commit']}), Redis on "
            "loopback; load generator, web server, PostgreSQL and Redis share the same cores",
            f"- Command: `{cmd}`; code: {self.code_version()}",
            f"- Web server: {self.server_summary()}: `{g_display}`; settings `config.settings.prod`, "
            "DEBUG off",
            f"- Load: open model (fixed arrival rate, latency from the scheduled send time), {a.gen_procs} "
            f"asyncio (uvloop) generator process(es), keep-alive HTTP/1.1, at most {a.max_conns} "
            "connections, "
            f"{a.timeout:g} s deadline per request; each step {a.warmup:g} s warm-up + "
            f"{a.duration:g} s measured; "
            f"{a.recipients:,} distinct recipients; batch = {a.batch_size} events per request",
            "",
            "| scenario | offered req/s | offered events/s | achieved events/s (req/s) | p50 ms | p95 ms "
            "| p99 ms | max ms | errors / requests | gen lag p99 ms | CPU % web server / postgres / redis / "
            "loadgen / other (machine = 200) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for s in self.steps:
            c = s["cpu"]
            eps = f"{s['achieved_eps']:,.0f} ({s['achieved_rps']:,.1f})" if s["scenario"] != "healthz" \
                else f"– ({s['achieved_rps']:,.1f})"
            offered = f"{s['offered_eps']:,.0f}" if s["scenario"] != "healthz" else "–"
            err = f"{s['errors']} / {s['measured']}"
            if s["error_kinds"]:
                err += " (" + ", ".join(f"{k}: {v}" for k, v in s["error_kinds"].items()) + ")"
            if s["retries"]:
                err += f"; {s['retries']} resent on a fresh connection"
            lines.append(
                f"| {s['scenario']} | {s['rate']:g} | {offered} | {eps} | {s['p50']:.1f} | {s['p95']:.1f} "
                f"| {s['p99']:.1f} | {s['max']:.1f} | {err} | {s['lag_p99']:.1f} | "
                f"{c['web']:.0f} / {c['postgres']:.0f} / {c['redis']:.0f} / {c['loadgen']:.0f} / "
                f"{c['other']:.0f} (= {c['machine']:.0f}) |")
        ingest = [s for s in ("batch", "single") if s in a.scenarios]
        if ingest:
            lines += ["", "## Targets", ""]
        for scenario in ingest:
            spec = SCENARIOS[scenario]
            per_req = a.batch_size if scenario == "batch" else 1
            target_eps = spec["target_rate"] * per_req
            steps = [s for s in self.steps if s["scenario"] == scenario]
            good = [s for s in steps if s["errors"] == 0 and s["p99"] < spec["target_p99_ms"]
                    and s["achieved_rps"] >= 0.97 * s["rate"]]
            best = max(good, key=lambda s: s["achieved_eps"], default=None)
            verdict = "PASS" if best and best["achieved_eps"] >= 0.97 * target_eps else "FAIL"
            if not steps:
                verdict = "NOT RUN"
            best_txt = "no step met the p99 limit without errors"
            if best:
                best_txt = (f"highest rate sustained within the p99 limit with no errors: {best['rate']:g} "
                            f"req/s = {best['achieved_eps']:,.0f} events/s (p99 {best['p99']:.1f} ms)")
            lines.append(f"- {spec['title']}: target ≥ {target_eps:,} events/s with p99 < "
                         f"{spec['target_p99_ms']:g} ms: **{verdict}**; {best_txt}.")
        lines += ["", "## Checks and baseline", ""]
        accepted_total = sum(self.accepted.values())
        if rows is None and ingest:
            lines.append("- Row check: table `events_event` does not exist.")
        elif rows is None:
            lines.append("- Row check and COPY baseline: not run (no ingest scenario).")
        else:
            extra = rows["total"] - accepted_total
            if extra == 0:
                match = "**matches**"
            elif 0 < extra <= self.unknown_events:
                match = (f"**consistent**: the {extra:,} extra rows belong to requests the generator gave "
                         "up on at their deadline, which the server still stored")
            else:
                match = "**DOES NOT match**"
            lines.append(
                f"- Rows in `events_event`: {rows['total']:,} (by source: "
                f"{', '.join(f'{k} {v:,}' for k, v in sorted(rows['by_source'].items())) or 'none'}); events "
                f"accepted with a 2xx, warm-ups and preflights included: {accepted_total:,} (batch "
                f"{self.accepted['batch']:,}, single {self.accepted['single']:,}): {match}"
                + (f"; {self.unknown_outcome} request(s) had no answer (timeout/connection error) and may or "
                   "may not have been stored" if self.unknown_outcome else "")
                + f". Recipients created: {rows['recipients']:,}.")
        if copy:
            lines.append(
                f"- Physical limit: `COPY` of {copy['rows']:,} event-shaped rows (same columns, JSON "
                "properties/context, unique message_id) into "
                "`bench_copy (LIKE events_event INCLUDING ALL)`, "
                f"{copy['indexes']} indexes, one transaction: {copy['seconds']:.2f} s = "
                f"**{copy['rows_per_s']:,.0f} rows/s**.")
            for scenario in ("batch", "single"):
                steps = [s for s in self.steps if s["scenario"] == scenario]
                if steps:
                    best = max(steps, key=lambda s: s["achieved_eps"])
                    lines.append(
                        f"- HTTP/COPY ratio, {scenario}: best achieved {best['achieved_eps']:,.0f} events/s "
                        f"(at {best['rate']:g} req/s offered, p99 {best['p99']:.1f} ms) = "
                        f"{100 * best['achieved_eps'] / copy['rows_per_s']:.1f} % of COPY.")
        elif "batch" in a.scenarios or "single" in a.scenarios:
            lines.append("- COPY baseline: not run.")
        if queue_note:
            lines.append(f"- Celery: {queue_note}.")
        for note in self.notes:
            lines.append(f"- {note}")
        noisy = [s for s in self.steps if s["cpu"]["other"] > 15]
        if noisy:
            worst = max(noisy, key=lambda s: s["cpu"]["other"])
            lines.append(
                f"- **Noise**: processes outside this benchmark used up to {worst['cpu']['other']:.0f} % CPU "
                f"during a step ({worst['scenario']} at {worst['rate']:g} req/s); on 2 cores that lowers "
                "throughput and inflates latency: rerun on an idle machine.")
        if self.primed and self.primed != "skipped":
            lines.append(f"- Recipients: {self.primed}.")
        with self.pg() as conn:
            autovacuum = conn.execute("SHOW autovacuum").fetchone()[0]
        if self.args.analyze:
            lines.append(f"- Statistics: `ANALYZE` ran before each step ({self.analyze_seconds:.1f} s in "
                         f"all, not measured), standing in for autovacuum (`autovacuum = {autovacuum}` "
                         "here).")
        else:
            lines.append(f"- Statistics: no `ANALYZE` (--no-analyze); `autovacuum = {autovacuum}` here.")
        for scenario, rate, path in self.profiles:
            if path.exists():
                lines += ["", f"## Profile: {scenario} at {rate:g} req/s (py-spy, web server workers)", ""]
                lines += profile_summary(path)
        lines += [
            "",
            "Columns: *achieved* counts successful responses to measured requests over the measured "
            "window (or until the last of them completed, if later); latency runs from the scheduled send "
            "time to the last response byte; *gen lag* is how late the generator sent relative to the "
            "schedule (it is included in latency; large values mean the generator, not the server, was "
            "short of CPU); CPU is per process group from /proc during the measured window, in % of one "
            "core. Errors are non-2xx answers, bodies without `success: true` (batch), timeouts and "
            "connection failures.",
            "",
        ]
        return "\n".join(lines)

    # ---- main --------------------------------------------------------------------------------

    def background_cpu(self) -> float:
        """Machine CPU use (of nproc x 100 %) over one second before the benchmark starts."""
        meter = CpuMeter(None, [])
        time.sleep(1.0)
        return meter.result()["machine"]

    def run(self) -> None:
        started = time.monotonic()
        self.idle_cpu = self.background_cpu()
        if self.idle_cpu > 20:
            log(f"warning: the machine is already busy ({self.idle_cpu:.0f} % CPU before the benchmark); "
                "figures will be low and noisy (see the `other` CPU column)")
        self.setup_database()
        self.queue_before = self.queue_length()
        self.start_server()
        try:
            self.run_scenarios()
            rows = self.count_rows() if {"batch", "single"} & set(self.args.scenarios) else None
        finally:
            self.stop_server()
        queue_note = self.clean_queue() if {"batch", "single"} & set(self.args.scenarios) else ""
        copy = None
        if not self.args.no_copy and rows is not None:
            n = self.args.copy_rows or sum(self.accepted.values()) or 100_000
            copy = self.copy_baseline(n)
        if rows is not None:
            extra = rows["total"] - sum(self.accepted.values())
            if extra < 0 or extra > self.unknown_events:
                self.notes.append("**Row count mismatch**: see the row check above.")
        text = self.report(rows, copy, queue_note, time.monotonic() - started)
        print(text)
        RESULTS.mkdir(exist_ok=True)
        out = Path(self.args.output)
        out.write_text(text)
        log(f"report written to {out}")

    def cleanup(self) -> None:
        for child in self.children:
            if child.poll() is None:
                child.kill()
        self.stop_server()


def rates(text: str) -> list[float]:
    return [float(x) for x in text.split(",") if x.strip()]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="about one minute: fewer rates (batch 50,100; single 250,500,1000), 5 s steps")
    p.add_argument("--scenarios", default="batch,single",
                   help="comma-separated from batch, single, healthz (the framework floor)")
    p.add_argument("--batch-rates", type=rates, default=None, help="req/s steps (default 25,50,75,100,150)")
    p.add_argument("--single-rates", type=rates, default=None,
                   help="req/s steps (default 100,250,500,625,750,875,1000)")
    p.add_argument("--healthz-rates", type=rates, default=None, help="req/s steps (default 500,1000)")
    p.add_argument("--duration", type=float, default=None,
                   help="measured seconds per step (default 12; quick 5)")
    p.add_argument("--warmup", type=float, default=None, help="warm-up seconds per step (default 3; quick 2)")
    # Default from trying sync x3/x4/x6 and gthread 2x4/2x8/3x3/4x4 on the 2-core machine: one
    # process per core with threads to overlap PostgreSQL/Redis waits, and keep-alive (which sync
    # workers lack, so the generator would pay a TCP connect per request on the same cores).
    p.add_argument("--server", choices=["granian", "gunicorn"], default="granian",
                   help="web server (default granian, as the README runs it in production)")
    p.add_argument("--worker-class", choices=["sync", "gthread"], default="gthread",
                   help="gunicorn worker class, with --server gunicorn (default gthread)")
    p.add_argument("--workers", type=int, default=2, help="web server worker processes (default 2)")
    p.add_argument("--threads", type=int, default=4,
                   help="threads per worker: granian's blocking threads, gunicorn gthread's (default 4)")
    p.add_argument("--gen-procs", type=int, default=1, help="load-generator processes (default 1)")
    p.add_argument("--max-conns", type=int, default=256,
                   help="connection cap per generator process (default 256)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="deadline per request in s, from its scheduled time (default 10)")
    p.add_argument("--recipients", type=int, default=10_000, help="distinct recipient ids (default 10000)")
    p.add_argument("--batch-size", type=int, default=100, help="events per /v1/batch request (default 100)")
    p.add_argument("--no-stop-on-saturation", dest="stop_on_saturation", action="store_false",
                   help="run every rate even after one saturated the server")
    p.add_argument("--no-copy", action="store_true", help="skip the COPY baseline")
    p.add_argument("--copy-rows", type=int, default=0,
                   help="rows for the COPY baseline (default: the events accepted)")
    p.add_argument("--keep-queue", action="store_true", help="leave the enqueued Celery tasks in Redis")
    p.add_argument("--db-name", default="signalbox_bench",
                   help="database dropped and recreated (default signalbox_bench)")
    p.add_argument("--redis-url", default=REDIS_URL, help=f"Celery broker and cache (default {REDIS_URL})")
    p.add_argument("--port", type=int, default=0, help="web server port (default: a free one)")
    p.add_argument("--output", default=str(RESULTS / "ingest-latest.md"),
                   help="where the Markdown report goes (default bench/results/ingest-latest.md)")
    p.add_argument("--no-analyze", dest="analyze", action="store_false",
                   help="do not ANALYZE the database before each step (as autovacuum would)")
    p.add_argument("--no-prime", dest="prime", action="store_false",
                   help="do not create the recipients through /v1/batch before the first step")
    p.add_argument("--profile", action="store_true",
                   help="record every measured step with py-spy (pip install --target /tmp/pyspy py-spy)")
    p.add_argument("--profile-dir", default=str(Path(tempfile.gettempdir()) / "signalbox-bench-profiles"),
                   help="where py-spy's raw stacks go (default $TMPDIR/signalbox-bench-profiles)")
    tmp = Path(tempfile.gettempdir())
    p.add_argument("--py-spy", default=shutil.which("py-spy") or str(tmp / "pyspy" / "bin" / "py-spy"),
                   help="py-spy binary (default: on PATH, else /tmp/pyspy/bin/py-spy)")
    args = p.parse_args(argv)
    args.scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    for s in args.scenarios:
        if s not in SCENARIOS:
            p.error(f"unknown scenario {s}")
    quick = args.quick
    args.batch_rates = args.batch_rates or ([50, 100] if quick else [25, 50, 75, 100, 150])
    args.single_rates = args.single_rates or ([250, 500, 1000] if quick
                                              else [100, 250, 500, 625, 750, 875, 1000])
    args.healthz_rates = args.healthz_rates or ([1000] if quick else [500, 1000])
    args.duration = args.duration or (5.0 if quick else 12.0)
    args.warmup = args.warmup if args.warmup is not None else (2.0 if quick else 3.0)
    if args.profile and not Path(args.py_spy).exists():
        p.error(f"--profile needs py-spy ({args.py_spy} not found)")
    if not 1 <= args.gen_procs <= 8:
        p.error("--gen-procs must be 1..8")
    all_rates = args.batch_rates + args.single_rates + args.healthz_rates
    if args.duration > 120 or any(r > 5000 for r in all_rates):
        p.error("steps are bounded: duration <= 120 s and rates <= 5000 req/s")
    return args


def main() -> None:
    if sys.argv[1:2] == ["--loadgen"]:
        loadgen_main()
        return
    bench = Bench(parse_args(sys.argv[1:]))

    def on_signal(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    try:
        bench.run()
    except KeyboardInterrupt:
        log("interrupted: stopping the web server and the load generators")
        sys.exit(130)
    finally:
        bench.cleanup()


if __name__ == "__main__":
    main()
