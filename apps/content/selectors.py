"""Reads: brands through the tenant hierarchy, partials and layouts a template may use, drafts as
sources, diffs between sources."""

import difflib
import re

from django.conf import settings

from apps.content.models import Brand, Layout, Partial, Template, TemplateLocale
from apps.content.rendering import CHANNEL_FIELDS

# Model field → (channel, source name). `email_body` is compiled into `html`.
CONTENT_FIELDS = {
    "email_subject": ("email", "subject"), "email_preheader": ("email", "preheader"),
    "email_format": ("email", "format"), "email_body": ("email", "body"), "email_text": ("email", "text"),
    "sms_text": ("sms", "text"),
    **{f"{channel}_{name}": (channel, name) for channel in ("push", "inbox", "chat", "webhook")
       for name in CHANNEL_FIELDS[channel]},
}
BRAND_FIELDS = ["logo_url", "primary_color", "background_color", "from_name", "from_email",
                "footer_text", "legal_address", "default_layout_id", "require_approval"]
BRAND_DEFAULTS = {"primary_color": "#1d4ed8", "background_color": "#f4f4f5", "require_approval": False}
RENDER_TAG = re.compile(r"""{%-?\s*(?:render|include)\s+['"]([^'"]+)['"]""")


def brand_effective(*, tenant) -> dict:
    """The tenant's brand: each field from the nearest tenant up the hierarchy that sets it."""
    lineage = tenant.lineage()
    brands = {b.tenant_id: b for b in Brand.objects.filter(tenant__in=lineage)}
    out: dict = {"name": tenant.name, "slug": tenant.slug}
    for field in BRAND_FIELDS:
        values = (getattr(brands[t.pk], field) for t in lineage if t.pk in brands)
        out[field] = next((v for v in values if v not in ("", None)), BRAND_DEFAULTS.get(field, ""))
    return out


def brand_context(brand: dict) -> dict:
    """What templates see as `tenant`."""
    return {k: v for k, v in brand.items() if k not in ("default_layout_id", "require_approval")}


def content_of(obj) -> dict[str, dict[str, str]]:
    """The channels a Template or TemplateLocale fills in: {channel: {name: source}}."""
    content: dict[str, dict[str, str]] = {}
    for field, (channel, name) in CONTENT_FIELDS.items():
        content.setdefault(channel, {})[name] = getattr(obj, field)
    return {channel: fields for channel, fields in content.items()
            if any(v.strip() for n, v in fields.items() if n != "format")}


def partials_for(*, tenant) -> dict[str, str]:
    """Partials a tenant's templates may render: its own, then its parents' (nearest wins)."""
    found: dict[str, str] = {}
    lineage = tenant.lineage()
    rows = Partial.objects.filter(tenant__in=lineage).values_list("tenant_id", "name", "body")
    order = {t.pk: n for n, t in enumerate(lineage)}
    for _, name, body in sorted(rows, key=lambda row: -order[row[0]]):
        found[name] = body
    return found


def partials_used(sources: list[str], partials: dict[str, str]) -> dict[str, str]:
    """The partials `sources` render, and those they render in turn."""
    used: dict[str, str] = {}
    pending = [name for source in sources for name in RENDER_TAG.findall(source)]
    while pending:
        name = pending.pop()
        if name in used or name not in partials:
            continue
        used[name] = partials[name]
        pending.extend(RENDER_TAG.findall(partials[name]))
    return used


def layouts_for(*, tenant):
    return Layout.objects.filter(tenant__in=tenant.lineage())


def layout_for(*, template: Template, fmt: str, brand: dict | None = None) -> Layout | None:
    """The template's own layout, else the brand's default one if it is of the body's format."""
    if template.layout_id is not None:
        return template.layout
    brand = brand or brand_effective(tenant=template.tenant)
    layout_id = brand["default_layout_id"]
    layout = Layout.objects.filter(pk=layout_id).first() if layout_id else None
    return layout if layout is not None and layout.format == fmt else None


def template_source(*, template: Template) -> dict:
    """The draft as a version's `source`: everything it renders with, layout and partials too."""
    content = content_of(template)
    rows = template.locales.all() if template.pk else []
    locales = {row.locale: content_of(row) for row in rows}
    locales = {locale: fields for locale, fields in locales.items() if fields}
    layout = None
    if "email" in content or any("email" in c for c in locales.values()):
        row = layout_for(template=template, fmt=(content.get("email") or {}).get("format", "mjml"))
        if row is not None:
            layout = {"name": row.name, "format": row.format, "body": row.body}
    sources = [v for c in [content, *locales.values()] for f in c.values() for v in f.values()]
    if layout:
        sources.append(layout["body"])
    partials = partials_used(sources, partials_for(tenant=template.tenant))
    return {"key": template.key, "name": template.name, "category": template.category,
            "strict": template.strict, "content": content, "locales": locales, "layout": layout,
            "partials": partials}


def source_fields(source: dict) -> dict[str, str]:
    """A source flattened to {"email.subject": "…", "pt-BR/sms.text": "…", "partial footer": "…"}."""
    out = {"name": source["name"], "category": source["category"], "strict": str(source["strict"])}
    for prefix, content in [("", source["content"]), *((f"{k}/", v) for k, v in source["locales"].items())]:
        for channel, fields in content.items():
            for name, value in fields.items():
                out[f"{prefix}{channel}.{name}"] = value
    if source.get("layout"):
        out[f"layout {source['layout']['name']}"] = source["layout"]["body"]
    for name, body in source.get("partials", {}).items():
        out[f"partial {name}"] = body
    return out


def source_diff(old: dict, new: dict, labels: tuple[str, str] = ("", "")) -> list[dict]:
    """Each field that differs, with an HTML side-by-side diff table (difflib)."""
    a, b = source_fields(old), source_fields(new)
    differ = difflib.HtmlDiff(wrapcolumn=50)
    changes = []
    for path in sorted(set(a) | set(b)):
        before, after = a.get(path, "").splitlines(), b.get(path, "").splitlines()
        if before != after:
            table = differ.make_table(before, after, *labels, context=True, numlines=2)
            change = "added" if path not in a else "removed" if path not in b else "changed"
            changes.append({"field": path, "table": table, "change": change})
    return changes


def sample_for(template: Template) -> tuple[dict, dict]:
    """(recipient, data) of the template's editable sample."""
    sample = template.sample_data if isinstance(template.sample_data, dict) else {}
    recipient = sample.get("recipient") if isinstance(sample.get("recipient"), dict) else {}
    data = sample.get("data") if isinstance(sample.get("data"), dict) else {}
    return recipient, data


def default_locale_for(tenant) -> str:
    return tenant.effective_default_locale() or settings.SIGNALBOX_DEFAULT_LOCALE


def template_edits(*, template: Template, limit: int = 50) -> list[dict]:
    """The latest saves of a template's draft and its locale variants (django-simple-history):
    when, who, and which fields changed."""
    def edits(records, label: str) -> list[dict]:
        records = list(records[: limit + 1])
        out = []
        for newer, older in zip(records, [*records[1:], None], strict=False):
            if older is None and len(records) > limit:
                break
            if newer.history_type == "+":
                what = "created"
            elif newer.history_type == "-":
                what = "deleted"
            else:
                changed = newer.diff_against(older).changed_fields if older else []
                what = "changed " + ", ".join(changed) if changed else "saved without changes"
            reason = f" ({newer.history_change_reason})" if newer.history_change_reason else ""
            out.append({"when": newer.history_date, "who": newer.history_user, "what": label + what + reason})
        return out

    rows = edits(template.history.select_related("history_user"), "")
    locale_history = TemplateLocale.history.filter(template_id=template.pk).select_related("history_user")
    by_locale: dict[str, list] = {}
    for record in locale_history.order_by("-history_date", "-history_id")[: limit * 4]:
        by_locale.setdefault(record.locale, []).append(record)
    for locale, records in by_locale.items():
        rows += edits(records, f"locale {locale}: ")
    return sorted(rows, key=lambda row: row["when"], reverse=True)[:limit]
