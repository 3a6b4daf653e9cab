"""The journey as an SVG diagram, drawn on the server from the steps (no script, no internet)."""

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

from apps.journeys.definition import next_fields

BOX_W, BOX_H, GAP_X, GAP_Y = 210, 92, 40, 60
COLORS = {"send": "#dbeafe", "delay": "#fef9c3", "wait": "#fde68a", "branch": "#e9d5ff", "exit": "#fecaca",
          "digest": "#fef3c7", "throttle": "#e0e7ff", "webhook": "#ccfbf1", "update_profile": "#dcfce7"}
# Edges a run takes when something went wrong are drawn dashed and red.
FAILURE_EDGES = ("on_failure",)


def _summary(step: dict) -> str:
    kind = step.get("type")
    if kind == "send":
        return f"{step.get('template')} by {'/'.join(step.get('channels') or [])}"
    if kind == "delay":
        return next((f"{k.replace('_', ' ')} {step[k]}" for k in ("duration", "until_time", "until_date")
                     if step.get(k)), "")
    if kind == "wait":
        return f"{step.get('event')} ≤ {step.get('timeout')}"
    if kind == "branch":
        return f"{len(step.get('paths') or [])} paths + default"
    if kind == "digest":
        until = f"window {step['window']}" if step.get("window") else f"until {step.get('until_time')}"
        most = f", ≤{step['max_items']}" if step.get("max_items") else ""
        return f"by {step.get('key') or '—'} {until}{most}"
    if kind == "throttle":
        key = f" by {step['key']}" if step.get("key") else ""
        return f"{step.get('limit')} per {step.get('window')}{key}"
    if kind == "webhook":
        return f"{step.get('method') or 'POST'} {step.get('url')}"
    if kind == "update_profile":
        names = [*(step.get("set") or {}), *(f"−{n}" for n in step.get("unset") or [])]
        return ", ".join(str(n) for n in names)
    return ""


def _steps(definition) -> dict[str, dict]:
    steps = definition.get("steps") if isinstance(definition, dict) else None
    return {s["id"]: s for s in steps if isinstance(s, dict) and isinstance(s.get("id"), str)} \
        if isinstance(steps, list) else {}


def _levels(definition: dict) -> dict[str, int]:
    """Each step's row: its distance from the start (unreachable steps go below the rest)."""
    steps = _steps(definition)
    start = definition.get("start") or next(iter(steps), None)
    levels, queue = {}, [(start, 0)] if start in steps else []
    while queue:
        sid, level = queue.pop(0)
        if sid in levels:
            continue
        levels[sid] = level
        queue += [(t, level + 1) for _, t in next_fields(steps[sid]) if isinstance(t, str) and t in steps]
    bottom = max(levels.values(), default=-1) + 1
    return {sid: levels.get(sid, bottom) for sid in steps}


def journey_svg(definition: dict, counts: dict[str, dict[str, int]], errors: dict[str, list[str]]
                ) -> SafeString:
    steps = _steps(definition)
    if not steps:
        return mark_safe("<p>No steps yet.</p>")  # noqa: S308 - a constant
    levels = _levels(definition)
    rows: dict[int, list[str]] = {}
    for sid, level in levels.items():
        rows.setdefault(level, []).append(sid)
    pos = {sid: (20 + i * (BOX_W + GAP_X), 20 + level * (BOX_H + GAP_Y))
           for level, ids in rows.items() for i, sid in enumerate(ids)}
    width = max(x for x, _ in pos.values()) + BOX_W + 20
    height = max(y for _, y in pos.values()) + BOX_H + 20
    edges, boxes = [], []
    for sid, step in steps.items():
        x, y = pos[sid]
        for label, target in next_fields(step):
            if isinstance(target, str) and target in pos:
                tx, ty = pos[target]
                failure = label in FAILURE_EDGES
                edges.append(format_html(
                    '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="{}"{} marker-end="url(#arrow)"/>'
                    '<text x="{}" y="{}" font-size="10" fill="{}">{}</text>',
                    x + BOX_W // 2, y + BOX_H, tx + BOX_W // 2, ty, "#b91c1c" if failure else "#555",
                    mark_safe(' stroke-dasharray="5 3" class="failure-edge"' if failure else ""),  # noqa: S308
                    (x + tx + BOX_W) // 2 + 4, (y + BOX_H + ty) // 2, "#b91c1c" if failure else "#555",
                    label if label != "next" else ""))
        c = counts.get(sid, {})
        step_errors = [m for path, msgs in errors.items() if path.startswith(f"steps.{sid}.") for m in msgs]
        boxes.append(format_html(
            '<g class="journey-step" data-step="{}"><rect x="{}" y="{}" width="{}" height="{}" rx="8" '
            'fill="{}" stroke="{}" stroke-width="{}"/>'
            '<text x="{}" y="{}" font-weight="bold" font-size="13">{} · {}</text>'
            '<text x="{}" y="{}" font-size="11">{}</text>'
            '<text x="{}" y="{}" font-size="10">entered {} · waiting {} · passed {}</text>'
            '<text x="{}" y="{}" font-size="10">exited {} · sent {} · conversions {}</text>'
            '<text x="{}" y="{}" font-size="10" fill="#b91c1c">{}</text></g>',
            sid, x, y, BOX_W, BOX_H, COLORS.get(step.get("type"), "#eee"),
            "#b91c1c" if step_errors else "#333", 3 if step_errors else 1,
            x + 8, y + 18, sid, step.get("type"), x + 8, y + 34, _summary(step)[:34],
            x + 8, y + 52, c.get("entered", 0), c.get("waiting", 0), c.get("passed", 0),
            x + 8, y + 66, c.get("exited", 0), c.get("sent", 0), c.get("conversions", 0),
            x + 8, y + 84, "; ".join(step_errors)[:40]))
    return format_html(
        '<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" '
        'aria-label="Journey diagram"><defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" '
        'markerWidth="6" markerHeight="6" orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z"/>'
        '</marker></defs>{}{}</svg>', width, height, format_html_join("", "{}", ((e,) for e in edges)),
        format_html_join("", "{}", ((b,) for b in boxes)))
