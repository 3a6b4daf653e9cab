"""Demo content for `make dev` (seed_demo), also used by tests and bench/render.py: a brand
layout, partials and four templates with email, SMS, push and in-app content."""

from django.db import transaction

from apps.content import services
from apps.content.models import Brand, Layout, Partial, Template, TemplateLocale

LAYOUT = """<mjml>
  <mj-head>
    <mj-title>{{ tenant.name }}</mj-title>
    <mj-attributes>
      <mj-all font-family="Helvetica, Arial, sans-serif" />
      <mj-text font-size="15px" line-height="1.5" color="#1f2937" />
      <mj-button background-color="{{ tenant.primary_color }}" border-radius="6px" font-weight="bold" />
    </mj-attributes>
    <mj-style inline="inline">.muted div { color: #6b7280 !important; }</mj-style>
  </mj-head>
  <mj-body background-color="{{ tenant.background_color }}" width="600px">
    <mj-section padding="24px 0 8px">
      <mj-column>
        {% if tenant.logo_url != blank %}
        <mj-image src="{{ tenant.logo_url }}" alt="{{ tenant.name }}" width="140px" />
        {% else %}
        <mj-text font-size="22px" font-weight="bold" color="{{ tenant.primary_color }}">
          {{ tenant.name }}
        </mj-text>
        {% endif %}
      </mj-column>
    </mj-section>
    <mj-section background-color="#ffffff" border-radius="8px" padding="8px 0">
      <mj-column>
        {{ content }}
      </mj-column>
    </mj-section>
    <mj-section>
      <mj-column>
        <mj-text css-class="muted" font-size="12px" align="center">{% render 'footer' %}</mj-text>
      </mj-column>
    </mj-section>
  </mj-body>
</mjml>
"""

PARTIALS = {
    "footer": (
        '{{ tenant.footer_text }}<br>{{ tenant.legal_address }}<br>'
        '<a href="{{ message.preferences_url }}">Email preferences</a> · '
        '<a href="{{ message.unsubscribe_url }}">Unsubscribe</a>'
    ),
    "signature": "Cheers,<br>The {{ tenant.name }} team",
    "greeting": 'Hi {{ recipient.first_name | default: "there" }},',
}

SAMPLE_RECIPIENT = {"first_name": "Ada", "email": "ada@example.com", "locale": "en", "plan": "pro"}

TEMPLATES = {
    "welcome": {
        "name": "Welcome", "category": "onboarding",
        "sample_data": {"recipient": SAMPLE_RECIPIENT, "data": {"app_url": "https://app.acme.example"}},
        "email_subject": 'Welcome to {{ tenant.name }}, {{ recipient.first_name | default: "friend" }}!',
        "email_preheader": "Three things to do first.",
        "email_body": (
            "<mj-text>{% render 'greeting' %}</mj-text>\n"
            "<mj-text>Thanks for joining {{ tenant.name }}. Your account is ready.</mj-text>\n"
            '<mj-button href="{{ data.app_url | default: \'https://app.acme.example\' }}">'
            "Open the app</mj-button>\n"
            "<mj-text>{% render 'signature' %}</mj-text>"
        ),
        "sms_text": "Welcome to {{ tenant.name }}, {{ recipient.first_name | default: 'friend' }}! "
                    "Reply STOP to opt out.",
        "push_title": "Welcome to {{ tenant.name }}",
        "push_body": "Tap to finish setting up your account.",
        "push_deep_link": "acme://onboarding",
        "inbox_title": "Welcome, {{ recipient.first_name | default: 'friend' }}!",
        "inbox_body": "Start with the three-minute tour.",
        "inbox_action_url": "https://app.acme.example/tour",
        "locales": {"de": {
            "email_subject": "Willkommen bei {{ tenant.name }}, "
                             "{{ recipient.first_name | default: 'Freund' }}!",
            "email_body": (
                "<mj-text>Hallo {{ recipient.first_name | default: 'zusammen' }},</mj-text>\n"
                "<mj-text>Danke, dass Sie {{ tenant.name }} nutzen.</mj-text>\n"
                "<mj-text>{% render 'signature' %}</mj-text>"
            ),
            "sms_text": "Willkommen bei {{ tenant.name }}! Antworten Sie STOP zum Abmelden.",
        }},
    },
    "nudge": {
        "name": "Finish your profile", "category": "onboarding",
        "sample_data": {"recipient": SAMPLE_RECIPIENT, "data": {"missing": ["photo", "company"]}},
        "email_subject": "{{ recipient.first_name | default: 'Hey' }}, your profile is almost done",
        "email_preheader": "{{ data.missing | size }} things left.",
        "email_body": (
            "<mj-text>{% render 'greeting' %}</mj-text>\n"
            "<mj-text>Add {{ data.missing | join: ' and ' }} so your team recognises you.</mj-text>\n"
            '<mj-button href="https://app.acme.example/profile">Finish my profile</mj-button>'
        ),
        "sms_text": "{{ tenant.name }}: add {{ data.missing | join: ' and ' }} to finish your profile.",
        "push_title": "Almost there",
        "push_body": "Add {{ data.missing | join: ' and ' }} to your profile.",
        "inbox_title": "Finish your profile",
        "inbox_body": "{{ data.missing | size }} things left.",
        "inbox_action_url": "https://app.acme.example/profile",
    },
    "tips": {
        "name": "Weekly tips", "category": "newsletter",
        "sample_data": {"recipient": SAMPLE_RECIPIENT, "data": {"tips": [
            {"title": "Keyboard shortcuts", "url": "https://acme.example/tips/keys"},
            {"title": "Share a dashboard", "url": "https://acme.example/tips/share"}]}},
        "email_subject": "{{ data.tips | size }} tips for this week",
        "email_preheader": "{{ data.tips.first.title }} and more.",
        "email_body": (
            "<mj-text>{% render 'greeting' %}</mj-text>\n"
            "{% for tip in data.tips %}"
            '<mj-text><a href="{{ tip.url }}">{{ forloop.index }}. {{ tip.title }}</a></mj-text>'
            "{% endfor %}\n"
            "<mj-text>{% render 'signature' %}</mj-text>"
        ),
        "sms_text": "{{ tenant.name }} tip: {{ data.tips.first.title }} {{ data.tips.first.url }}",
        "push_title": "Tip of the week",
        "push_body": "{{ data.tips.first.title }}",
        "inbox_title": "{{ data.tips | size }} new tips",
        "inbox_body": "{{ data.tips | map: 'title' | join: ', ' }}",
    },
    "cart-reminder": {
        "name": "Cart reminder", "category": "cart",
        "sample_data": {"recipient": SAMPLE_RECIPIENT, "data": {"cart": {
            "url": "https://shop.acme.example/cart", "total": 127.5, "items": [
                {"name": "Trail shoes", "quantity": 1, "price": 89.0},
                {"name": "Socks (3 pack)", "quantity": 2, "price": 19.25}]}}},
        "email_subject": "You left {{ data.cart.items | size }} items in your cart",
        "email_preheader": "Your cart total is {{ data.cart.total | money: '$' }}.",
        "email_body": (
            "<mj-text>{% render 'greeting' %}</mj-text>\n"
            "<mj-text>Still thinking it over? Your cart is saved:</mj-text>\n"
            "{% for item in data.cart.items %}"
            "<mj-text>{{ item.quantity }} × {{ item.name }} — {{ item.price | money: '$' }}</mj-text>"
            "{% endfor %}\n"
            "<mj-text font-weight=\"bold\">Total {{ data.cart.total | money: '$' }}</mj-text>\n"
            '<mj-button href="{{ data.cart.url }}">Back to my cart</mj-button>\n'
            "<mj-text>{% render 'signature' %}</mj-text>"
        ),
        "sms_text": "{{ tenant.name }}: your cart ({{ data.cart.total | money: '$' }}) is waiting: "
                    "{{ data.cart.url }}",
        "push_title": "Your cart misses you",
        "push_body": "{{ data.cart.items | size }} items, {{ data.cart.total | money: '$' }}",
        "push_deep_link": "acme://cart",
        "push_data": '{"cart_url": "{{ data.cart.url }}"}',
        "inbox_title": "Items in your cart",
        "inbox_body": "{{ data.cart.items | map: 'name' | join: ', ' }}",
        "inbox_action_url": "{{ data.cart.url }}",
    },
    # Sent by the comment-digest journey (apps/journeys/demo.py): `batch` holds the comments
    # its digest step collected (at most 100 items; `count` counts them all).
    "comment-digest": {
        "name": "Comment digest", "category": "product-updates",
        "sample_data": {"recipient": SAMPLE_RECIPIENT, "data": {"thread_title": "Launch plan", "batch": {
            "key": "42", "count": 2, "items": [
                {"thread_id": 42, "thread_title": "Launch plan", "author": "Grace", "text": "Looks good!"},
                {"thread_id": 42, "thread_title": "Launch plan", "author": "Linus", "text": "Ship it."}]}}},
        "email_subject": "{{ batch.count }} new comment{% if batch.count != 1 %}s{% endif %} "
                         "on {{ data.thread_title | default: 'your thread' }}",
        "email_preheader": "{{ batch.items | map: 'author' | uniq | join: ', ' }}",
        "email_body": (
            "<mj-text>{% render 'greeting' %}</mj-text>\n"
            "<mj-text>{{ batch.count }} new comments on "
            "<b>{{ data.thread_title | default: 'your thread' }}</b>:</mj-text>\n"
            "{% for item in batch.items %}"
            "<mj-text><b>{{ item.author }}</b>: {{ item.text }}</mj-text>"
            "{% endfor %}\n"
            "{% if batch.count > batch.items.size %}"
            "<mj-text>…and {{ batch.count | minus: batch.items.size }} more.</mj-text>{% endif %}\n"
            "<mj-text>{% render 'signature' %}</mj-text>"
        ),
    },
}

BRAND = {"primary_color": "#4f46e5", "background_color": "#f4f4f5", "from_name": "Acme",
         "from_email": "hello@acme.example",
         "footer_text": "You receive this because you have an Acme account.",
         "legal_address": "Acme Inc., 1 Market Street, San Francisco, CA 94105"}
CHILD_BRAND = {"primary_color": "#059669", "legal_address": "Acme Europe GmbH, Unter den Linden 1, Berlin"}


@transaction.atomic
def demo_content_seed(*, tenant, child=None) -> list[str]:
    """Brand (and a child tenant's brand overriding colours), layout, partials and published
    templates. Idempotent: existing rows are left as they are. Returns the template keys."""
    layout, _ = Layout.objects.get_or_create(tenant=tenant, name="brand", defaults={"body": LAYOUT})
    Brand.objects.get_or_create(tenant=tenant, defaults={**BRAND, "default_layout": layout})
    if child is not None:
        Brand.objects.get_or_create(tenant=child, defaults=CHILD_BRAND)
    for name, body in PARTIALS.items():
        Partial.objects.get_or_create(tenant=tenant, name=name, defaults={"body": body})
    for key, spec in TEMPLATES.items():
        fields = {k: v for k, v in spec.items() if k != "locales"}
        template, created = Template.objects.get_or_create(tenant=tenant, key=key, defaults=fields)
        if not created:
            continue
        for locale, content in spec.get("locales", {}).items():
            TemplateLocale.objects.create(tenant=tenant, template=template, locale=locale, **content)
        services.template_version_publish(template=template, user=None, comment="Demo content.")
    return list(TEMPLATES)
