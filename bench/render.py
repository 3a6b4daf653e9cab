#!/usr/bin/env python
"""Template rendering benchmark: how long one send's rendering takes, warm and cold.

    .venv/bin/python bench/render.py                 # about 20 seconds
    .venv/bin/python bench/render.py --renders 2000  # quicker

The typical email is the demo's `cart-reminder` (apps/content/demo.py): the MJML brand layout,
three partials (greeting, signature, footer), a loop over 10 cart items with the `money` filter,
subject, preheader, HTML and the derived text version. It is compiled once, as a publish does,
then rendered many times, as sends do: each render builds the context from plain data
(`context_for`, which copies it) and renders every field of the channel — exactly what
`apps.content.services.template_render_for_send` does after its one database query (which
version is live), which this benchmark leaves out.

Needs no database or server. Prints a Markdown report and writes bench/results/render-latest.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import gc
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
TARGET_MS = 2.0

sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.dev")


def setup():
    import django

    django.setup()
    from apps.content import demo, selectors

    spec = demo.TEMPLATES["cart-reminder"]
    content: dict = {}
    for field, (channel, name) in selectors.CONTENT_FIELDS.items():
        value = spec.get(field, "mjml" if field == "email_format" else "")
        content.setdefault(channel, {})[name] = value
    content = {c: f for c, f in content.items() if any(v for n, v in f.items() if n != "format")}
    source = {"strict": False, "content": content, "locales": {}, "partials": demo.PARTIALS,
              "layout": {"name": "brand", "format": "mjml", "body": demo.LAYOUT}}
    items = [{"name": f"Item number {n}", "quantity": n % 3 + 1, "price": 9.99 + n} for n in range(10)]
    data = {"cart": {"url": "https://shop.acme.example/cart/abc123", "total": 240.9, "items": items}}
    recipient = {"external_id": "user-1", "email": "ada@example.com", "locale": "en",
                 "attributes": {"first_name": "Ada", "plan": "pro"}}
    tenant = {"name": "Acme", "slug": "acme", "logo_url": "", **demo.BRAND}
    message = {"id": 123456, "unsubscribe_url": "https://acme.example/u/abc",
               "preferences_url": "https://acme.example/p/abc"}
    return source, {"recipient": recipient, "data": data, "tenant": tenant, "message": message}


def percentiles(samples_ns: list[int]) -> dict:
    ordered = sorted(samples_ns)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1e6

    return {"n": len(ordered), "median": statistics.median(ordered) / 1e6, "p95": at(0.95),
            "p99": at(0.99), "max": ordered[-1] / 1e6, "mean": statistics.fmean(ordered) / 1e6}


def measure(fn, renders: int, warmup: int) -> dict:
    for _ in range(warmup):
        fn()
    samples = []
    cpu_started = time.process_time_ns()
    for _ in range(renders):
        started = time.perf_counter_ns()
        fn()
        samples.append(time.perf_counter_ns() - started)
    # CPU time per render: what the render costs, whatever else runs on the machine.
    return {**percentiles(samples), "cpu": (time.process_time_ns() - cpu_started) / renders / 1e6}


def run(args) -> tuple[list[tuple[str, dict]], dict]:
    from apps.content.compiling import compile_source
    from apps.content.rendering import CompiledVersion, context_for

    source, inputs = setup()
    facts: dict = {}
    compiles = []
    for _ in range(args.compiles):
        started = time.perf_counter_ns()
        compiled = compile_source(source)
        compiles.append(time.perf_counter_ns() - started)
    facts["compile"] = percentiles(compiles)
    version = CompiledVersion(compiled)

    def render(channels):
        def once():
            context = context_for(**inputs)
            return [version.render(locale="", channel=c, context=context) for c in channels]
        return once

    email = render(["email"])()[0]
    facts["html_bytes"] = len(email["html"].encode())
    facts["text_bytes"] = len(email["text"].encode())
    assert email["html"].count("Item number") == 10 and "Unsubscribe" in email["html"]

    cold = []
    for _ in range(args.compiles):
        fresh = CompiledVersion(compiled)
        context = context_for(**inputs)
        started = time.perf_counter_ns()
        fresh.render(locale="", channel="email", context=context)
        cold.append(time.perf_counter_ns() - started)
    facts["cold"] = percentiles(cold)

    gc.collect()
    rows = [
        ("email (subject, preheader, HTML, text)", measure(render(["email"]), args.renders, args.warmup)),
        ("email + SMS + push + in-app", measure(render(["email", "sms", "push", "inbox"]), args.renders,
                                                args.warmup)),
        ("SMS only", measure(render(["sms"]), args.renders, args.warmup)),
    ]
    return rows, facts


def code_version() -> str:
    try:
        head = subprocess.run(["git", "log", "-1", "--format=%h %s"], cwd=ROOT, capture_output=True,
                              text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True,
                               timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    return f"`{head}`" + (" plus uncommitted changes" if dirty else "")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            return next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "?")
    except OSError:
        return "?"


def report(rows, facts, args, elapsed: float) -> str:
    from importlib.metadata import version

    email = rows[0][1]
    verdict = "**met**" if email["median"] < TARGET_MS else "**not met**"
    lines = [
        "# Render benchmark",
        "",
        f"- Date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}; run took {elapsed:.0f} s",
        f"- Machine: nproc {os.cpu_count()} ({cpu_model()}), Python {platform.python_version()}, "
        f"python-liquid {version('python-liquid')}, mjml-python {version('mjml-python')}, "
        f"css-inline {version('css-inline')}; one process, one thread",
        f"- Command: `{' '.join(['.venv/bin/python', 'bench/render.py', *sys.argv[1:]])}`; code: "
        f"{code_version()}",
        "- Template: the demo `cart-reminder` — MJML brand layout, 3 partials (greeting, signature, footer), "
        f"a loop over 10 cart items with `money`; {facts['html_bytes']:,} bytes of HTML and "
        f"{facts['text_bytes']:,} of text per send",
        f"- Each render: `context_for` (copies the plain data) + `CompiledVersion.render` per channel; "
        f"{args.warmup} warm-up renders, then {args.renders:,} measured one after another",
        f"- Load average before the run: {args.load:.2f} (the machine's other work shows in p99 and max; "
        "`CPU/render` is this process's CPU time per render)",
        "",
        "| warm render | median | p95 | p99 | max | mean | CPU/render |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, s in rows:
        lines.append(f"| {name} | {s['median']:.3f} ms | {s['p95']:.3f} ms | {s['p99']:.3f} ms | "
                     f"{s['max']:.3f} ms | {s['mean']:.3f} ms | {s['cpu']:.3f} ms |")
    c, k = facts["compile"], facts["cold"]
    lines += [
        "",
        f"- Publish-time compile (layout + MJML + CSS inlining + text derivation), {c['n']} runs: "
        f"median {c['median']:.1f} ms, max {c['max']:.1f} ms — once per version.",
        f"- First render of a version in a process (parsing its Liquid), {k['n']} runs: median "
        f"{k['median']:.1f} ms, max {k['max']:.1f} ms — once per version per process (LRU by version id).",
        "",
        "## Target",
        "",
        f"- Typical email rendered warm in < {TARGET_MS:g} ms: median {email['median']:.3f} ms, "
        f"p99 {email['p99']:.3f} ms: {verdict}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--renders", type=int, default=10_000, help="measured renders per scenario")
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--compiles", type=int, default=20, help="compiles and cold renders measured")
    parser.add_argument("--no-write", action="store_true", help="print only; keep results/ as it is")
    args = parser.parse_args()
    args.load = os.getloadavg()[0]
    started = time.monotonic()
    rows, facts = run(args)
    text = report(rows, facts, args, time.monotonic() - started)
    print(text)
    if not args.no_write:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "render-latest.md").write_text(text)


if __name__ == "__main__":
    main()
