"""The hosted preference page and one-click unsubscribe (no login: the signed link is the key)."""

from django.shortcuts import render
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from apps.content.selectors import brand_effective
from apps.core import clock
from apps.core.errors import InvalidInput
from apps.messaging.models import Channel
from apps.policy import services
from apps.policy.links import BadLink, link_recipient
from apps.policy.preferences import preference_apply, preference_data
from apps.policy.selectors import PolicyLookup

# Channels a person chooses between; webhooks are the product's, not the person's.
PAGE_CHANNELS = [Channel.EMAIL, Channel.SMS, Channel.PUSH, Channel.INBOX, Channel.CHAT]


def _bad_link(request, error: BadLink):
    return render(request, "policy/bad_link.html", {"message": str(error)}, status=400)


@require_http_methods(["GET", "POST"])
def preferences_page(request, token: str):
    try:
        recipient = link_recipient(token=token)
    except BadLink as error:
        return _bad_link(request, error)
    policy = PolicyLookup()(tenant=recipient.tenant)
    preference = services.preference_get(recipient=recipient)
    saved, errors = False, {}
    if request.method == "POST":
        try:
            raw = _form_to_raw(request.POST, policy)
            preference = preference_apply(preference=preference, policy=policy, raw=raw)
            services.preference_save(preference=preference)
            saved = True
        except InvalidInput as error:
            errors = error.fields
    data = preference_data(preference=preference, policy=policy)
    rows = [{"key": key, **category, "choices": [(c, category["channels"][c]) for c in PAGE_CHANNELS]}
            for key, category in data["categories"].items()]
    return render(request, "policy/preferences.html", {
        "brand": brand_effective(tenant=recipient.tenant), "rows": rows, "channels": PAGE_CHANNELS,
        "data": data, "saved": saved, "errors": errors}, status=400 if errors else 200)


def _form_to_raw(form, policy) -> dict:
    """Checkboxes → the API's shape: an unticked box is an explicit `false`."""
    categories = {key: {c: f"{key}:{c}" in form for c in PAGE_CHANNELS if not category.required}
                  for key, category in policy.categories.items()}
    start, end = form.get("quiet_start", ""), form.get("quiet_end", "")
    return {"categories": categories, "commercial_unsubscribed": "commercial_unsubscribed" in form,
            "quiet_hours": {"start": start, "end": end} if start or end else None}


@csrf_exempt  # RFC 8058: mail clients POST without a session or token; the signed URL is the key
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token: str):
    """GET: a confirmation page. POST: unsubscribe from everything commercial, no questions
    (RFC 8058 one-click, and the confirmation page's button)."""
    try:
        recipient = link_recipient(token=token)
    except BadLink as error:
        return _bad_link(request, error)
    done = request.method == "POST"
    if done:
        preference = services.preference_get(recipient=recipient)
        if preference.commercial_unsubscribed_at is None:
            preference.commercial_unsubscribed_at = clock.now()
            services.preference_save(preference=preference)
    return render(request, "policy/unsubscribe.html", {
        "brand": brand_effective(tenant=recipient.tenant), "done": done, "token": token})
