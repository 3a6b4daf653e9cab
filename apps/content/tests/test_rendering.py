"""Each channel rendered from a compiled template, with the context templates see."""

import pytest

from apps.content.compiling import compile_source
from apps.content.rendering import CompiledVersion, RenderError, context_for, locale_chain

FOOTER = '<p>{{ tenant.legal_address }} · <a href="{{ message.unsubscribe_url }}">Unsubscribe</a></p>'
LAYOUT = {"name": "brand", "format": "mjml", "body": (
    '<mjml><mj-head><mj-style inline="inline">.lead div { letter-spacing: 3px; }</mj-style></mj-head>'
    '<mj-body background-color="{{ tenant.background_color }}">'
    "<mj-section><mj-column>{{ content }}</mj-column></mj-section>"
    "<mj-section><mj-column><mj-text>{% render 'footer' %}</mj-text></mj-column></mj-section>"
    "</mj-body></mjml>")}
CONTENT = {
    "email": {"subject": "Your order, {{ recipient.first_name }}", "format": "mjml",
              "preheader": "{{ data.order.items | size }} items inside",
              "body": ('<mj-text css-class="lead">Hi {{ recipient.first_name | default: "there" }},</mj-text>'
                       "{% for item in data.order.items %}"
                       "<mj-text>{{ item.name }}: {{ item.price | money: '$' }}</mj-text>{% endfor %}"
                       '<mj-button href="{{ data.order.url }}">See order</mj-button>'),
              "text": ""},
    "sms": {"text": "{{ recipient.first_name }}, total {{ data.order.total | money: '€' }}"},
    "push": {"title": "Order {{ data.order.id }}", "body": "{{ data.order.items | size }} items",
             "image": "https://img.example/{{ data.order.id }}.png",
             "deep_link": "app://orders/{{ data.order.id }}",
             "data": '{"order_id": "{{ data.order.id }}", "nested": {"n": ["{{ recipient.plan }}"]}}'},
    "inbox": {"title": "Order shipped", "body": "Hi {{ recipient.first_name }}",
              "action_url": "{{ data.order.url }}", "avatar": "{{ tenant.logo_url }}"},
    "chat": {"text": "New order {{ data.order.id }}", "blocks": (
        '[{"type": "section", "text": {"type": "mrkdwn", "text": "*{{ recipient.first_name }}* ordered"}}]')},
    "webhook": {"body": '{"event": "order", "name": "{{ recipient.first_name }}", "count": 3}'},
}
CONTEXT = context_for(
    recipient={"external_id": "u1", "email": "ada@example.com", "locale": "en",
               "attributes": {"first_name": "Ada \"<b>\"", "plan": "pro"}},
    data={"order": {"id": "A-1", "total": 1234.5, "url": "https://shop.example/o?id=1&x=2",
                    "items": [{"name": "Shoes", "price": 89}, {"name": "Socks & more", "price": 9.5}]}},
    tenant={"name": "Acme", "legal_address": "1 Main St", "background_color": "#eeeeee",
            "logo_url": "https://img.example/logo.png"},
    message={"id": "42", "unsubscribe_url": "https://u.example/1"},
)


@pytest.fixture(scope="module")
def compiled():
    return CompiledVersion(compile_source({"strict": False, "layout": LAYOUT, "partials": {"footer": FOOTER},
                                           "content": CONTENT, "locales": {}}))


def test_email_html_is_compiled_mjml_with_inlined_css_and_escaped_data(compiled):
    email = compiled.render(locale="", channel="email", context=CONTEXT)
    assert email["subject"] == 'Your order, Ada "<b>"'
    assert email["preheader"] == "2 items inside"
    html = email["html"]
    assert html.lower().startswith("<!doctype html>")
    assert "Hi Ada &#34;&lt;b&gt;&#34;," in html  # data is escaped in HTML
    assert "Shoes: $89.00" in html and "Socks &amp; more: $9.50" in html
    assert 'href="https://shop.example/o?id=1&amp;x=2"' in html
    assert "letter-spacing: 3px" in html.split("</head>")[1]  # mj-style inline="inline" applied
    assert 'background-color="#eeeeee"' in html or "background-color:#eeeeee" in html
    assert "1 Main St" in html and 'href="https://u.example/1"' in html  # the footer partial
    assert html.index("2 items inside") < html.index("Hi Ada")  # preheader first in the body


def test_email_text_is_derived_from_the_html(compiled):
    text = compiled.render(locale="", channel="email", context=CONTEXT)["text"]
    assert 'Hi Ada "<b>",' in text  # not escaped in text
    assert "Shoes: $89.00" in text and "Socks & more: $9.50" in text
    assert "[See order](https://shop.example/o?id=1&x=2)" in text
    assert "[Unsubscribe](https://u.example/1)" in text
    assert "<" not in text.replace('"<b>"', "")
    assert "\n\n\n" not in text


def test_text_channels(compiled):
    sms = compiled.render(locale="", channel="sms", context=CONTEXT)
    assert sms == {"text": 'Ada "<b>", total €1,234.50'}
    assert compiled.render(locale="", channel="push", context=CONTEXT) == {
        "title": "Order A-1", "body": "2 items", "image": "https://img.example/A-1.png",
        "deep_link": "app://orders/A-1", "data": {"order_id": "A-1", "nested": {"n": ["pro"]}}}
    assert compiled.render(locale="", channel="inbox", context=CONTEXT) == {
        "title": "Order shipped", "body": 'Hi Ada "<b>"', "action_url": "https://shop.example/o?id=1&x=2",
        "avatar": "https://img.example/logo.png"}


def test_json_channels_stay_valid_json_whatever_the_data(compiled):
    chat = compiled.render(locale="", channel="chat", context=CONTEXT)
    assert chat["text"] == "New order A-1"
    assert chat["blocks"][0]["text"]["text"] == '*Ada "<b>"* ordered'
    webhook = compiled.render(locale="", channel="webhook", context=CONTEXT)
    assert webhook == {"body": {"event": "order", "name": 'Ada "<b>"', "count": 3}}


def test_link_seam_rewrites_every_link(compiled):
    email = compiled.render(locale="", channel="email", context=CONTEXT,
                            link_wrapper=lambda url: "https://t.example/c?u=" + url.replace("&amp;", "%26"))
    assert 'href="https://t.example/c?u=https://shop.example/o?id=1%26x=2"' in email["html"]
    assert 'href="https://t.example/c?u=https://u.example/1"' in email["html"]


def test_subject_stays_one_line():
    compiled = CompiledVersion(compile_source({"content": {"email": {
        "subject": "Hi {{ data.name }}", "format": "html", "body": "<p>x</p>"}}, "locales": {}}))
    email = compiled.render(locale="", channel="email", context=context_for(
        recipient={}, data={"name": "A\r\nBcc: evil@example.com"}, tenant={}, message={}))
    assert email["subject"] == "Hi A Bcc: evil@example.com"


def test_undefined_renders_empty_unless_strict():
    source = {"content": {"sms": {"text": "Hi {{ recipient.nickname }}!{% if recipient.vip %} VIP{% endif %} "
                                          "{{ recipient.first_name | default: 'friend' }}"}}, "locales": {}}
    context = context_for(recipient={}, data={}, tenant={}, message={})
    lax = CompiledVersion(compile_source(source))
    assert lax.render(locale="", channel="sms", context=context)["text"] == "Hi ! friend"
    strict = CompiledVersion(compile_source({**source, "strict": True}))
    with pytest.raises(RenderError, match=r"sms.text: line 1, column 7: recipient.nickname is undefined"):
        strict.render(locale="", channel="sms", context=context)


def test_money_and_json_filters():
    compiled = CompiledVersion(compile_source({"content": {"sms": {
        "text": "{{ data.a | money }} {{ data.b | money: '$' }} {{ data.c | json }}"}}, "locales": {}}))
    out = compiled.render(locale="", channel="sms", context=context_for(
        recipient={}, data={"a": "1234.567", "b": -3, "c": {"k": ["v"]}}, tenant={}, message={}))
    assert out["text"] == '1,234.57 -$3.00 {"k": ["v"]}'


def test_a_missing_channel_is_a_render_error(compiled):
    with pytest.raises(RenderError, match="no webhook content"):
        CompiledVersion(compile_source({"content": {"sms": {"text": "x"}}, "locales": {}})).render(
            locale="", channel="webhook", context=CONTEXT)


def test_locale_chain_falls_back_to_language_then_tenant_default_then_base():
    assert locale_chain("pt-BR", "de-AT") == ["pt-BR", "pt", "de-AT", "de", ""]
    assert locale_chain("", "en") == ["en", ""]
    compiled = CompiledVersion({"locales": {"": {}, "pt": {}, "de": {}}})
    assert compiled.locale_for("pt-BR", "en") == "pt"
    assert compiled.locale_for("fr", "de-DE") == "de"
    assert compiled.locale_for("fr", "en") == ""


def test_context_takes_only_plain_data():
    from apps.tenants.models import Tenant

    with pytest.raises(ValueError, match="Tenant values are not allowed"):
        context_for(recipient={}, data={"tenant": Tenant(name="x")}, tenant={}, message={})
    deep: dict = {}
    node = deep
    for _ in range(30):
        node["x"] = {}
        node = node["x"]
    with pytest.raises(ValueError, match="nested deeper"):
        context_for(recipient={}, data=deep, tenant={}, message={})
