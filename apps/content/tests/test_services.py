"""Publishing and `template_render_for_send`, the contract the delivery pipeline calls."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.content import services
from apps.content.models import Template, TemplateVersion
from apps.content.tests.factories import (
    BrandFactory,
    LayoutFactory,
    PartialFactory,
    TemplateFactory,
    TemplateLocaleFactory,
    published,
)
from apps.core.errors import InvalidInput, NotFound
from apps.tenants.tests.factories import TenantFactory

pytestmark = pytest.mark.django_db

RECIPIENT = {"external_id": "u1", "email": "ada@example.com", "locale": "en",
             "attributes": {"first_name": "Ada"}}
MESSAGE = {"id": 7, "unsubscribe_url": "https://u.example/7"}


def send(tenant, key, channels, recipient=RECIPIENT, data=None):
    return services.template_render_for_send(tenant=tenant, key=key, channels=channels, recipient=recipient,
                                             data=data or {"total": 12}, message=MESSAGE)


@pytest.fixture
def tenant():
    return TenantFactory(name="Acme", slug="acme", default_locale="en")


def test_renders_the_published_version_with_the_api_content_names(tenant):
    BrandFactory(tenant=tenant, from_name="Acme", from_email="hi@acme.example")
    template = TemplateFactory(tenant=tenant, key="receipt", push_title="Paid {{ data.total | money }}",
                               inbox_body="b", chat_text="c", webhook_body='{"t": "{{ data.total }}"}')
    version = published(template)
    got, content = send(tenant, "receipt", ["email", "sms", "push", "inbox", "chat", "webhook"])
    assert got == version and version.number == 1
    assert set(content["email"]) == {"subject", "preheader", "html", "text", "from_name", "from_email"}
    assert content["email"]["subject"] == "Hello Ada"
    assert "your total is $12.00." in content["email"]["html"]
    assert content["email"]["text"].strip() == "Hi Ada, your total is $12.00."
    assert (content["email"]["from_name"], content["email"]["from_email"]) == ("Acme", "hi@acme.example")
    assert content["sms"] == {"text": "Hi Ada: 12.00"}
    assert content["push"] == {"title": "Paid 12.00", "body": "", "image": "", "deep_link": "", "data": {}}
    assert content["inbox"] == {"title": "", "body": "b", "action_url": "", "avatar": ""}
    assert content["chat"] == {"text": "c", "blocks": []}
    assert content["webhook"] == {"body": {"t": "12"}}


def test_the_version_published_at_the_moment_of_sending_is_used(tenant):
    template = TemplateFactory(tenant=tenant, key="k", sms_text="one")
    first = published(template)
    Template.objects.filter(pk=template.pk).update(sms_text="two")  # a draft edit changes nothing
    assert send(tenant, "k", ["sms"])[1]["sms"]["text"] == "one"
    template.refresh_from_db()
    second = published(template)
    version, content = send(tenant, "k", ["sms"])
    assert (version, second.number, content["sms"]["text"]) == (second, 2, "two")
    assert first.number == 1


def test_unknown_or_unpublished_key_is_not_found(tenant):
    TemplateFactory(tenant=tenant, key="draft-only")
    for key in ("nope", "draft-only"):
        with pytest.raises(NotFound, match=key):
            send(tenant, key, ["sms"])


def test_another_tenants_template_is_not_found(tenant):
    published(TemplateFactory(tenant=TenantFactory(slug="charlie"), key="secret"))
    with pytest.raises(NotFound):
        send(tenant, "secret", ["sms"])


def test_missing_channel_and_render_failures_are_invalid_input_on_template(tenant):
    sample = {"recipient": {"nickname": "Al", "first_name": "Al"}, "data": {"total": 1}}
    published(TemplateFactory(tenant=tenant, key="k", strict=True, sms_text="{{ recipient.nickname }}",
                              sample_data=sample))
    with pytest.raises(InvalidInput) as caught:
        send(tenant, "k", ["push"])
    assert caught.value.fields == {"template": ["'k' version 1: the template has no push content"]}
    with pytest.raises(InvalidInput) as caught:
        send(tenant, "k", ["sms"])
    assert "recipient.nickname is undefined" in caught.value.fields["template"][0]
    with pytest.raises(InvalidInput) as caught:
        send(tenant, "k", ["sms"], data={"x": object()})
    assert list(caught.value.fields) == ["data"]


def test_recipient_locale_picks_the_variant_with_fallback(tenant):
    template = TemplateFactory(tenant=tenant, key="k", sms_text="English")
    TemplateLocaleFactory(template=template, locale="pt", sms_text="Português")
    TemplateLocaleFactory(template=template, locale="pt-BR", sms_text="Brasileiro")
    TemplateLocaleFactory(template=template, locale="de", email_subject="Hallo",
                          email_body="<mj-text>x</mj-text>")
    published(template)

    def text(locale, channel="sms"):
        return send(tenant, "k", [channel], recipient={**RECIPIENT, "locale": locale})[1][channel]

    assert text("pt-BR")["text"] == "Brasileiro"
    assert text("pt_br")["text"] == "Brasileiro"
    assert text("pt-PT")["text"] == "Português"
    assert text("fr")["text"] == "English"
    assert text("de")["text"] == "English"  # de has no SMS of its own: the template's
    assert text("de", "email")["subject"] == "Hallo"
    tenant.default_locale = "pt"
    tenant.save()
    services.template_cache_clear()
    assert text("")["text"] == "Português"  # no locale: the tenant's default


def test_a_sub_tenant_inherits_templates_and_brand_and_overrides_colours(tenant):
    child = TenantFactory(parent=tenant, slug="acme-eu")
    layout = LayoutFactory(tenant=tenant, body=(
        '<mjml><mj-body><mj-section background-color="{{ tenant.primary_color }}"><mj-column>'
        "{{ content }}<mj-text>{{ tenant.legal_address }}</mj-text>"
        "</mj-column></mj-section></mj-body></mjml>"))
    BrandFactory(tenant=tenant, primary_color="#111111", legal_address="Parent St", default_layout=layout,
                 from_email="parent@acme.example")
    BrandFactory(tenant=child, primary_color="#222222")
    published(TemplateFactory(tenant=tenant, key="k"))
    _, parent_content = send(tenant, "k", ["email"])
    _, child_content = send(child, "k", ["email"])
    assert "#111111" in parent_content["email"]["html"] and "#222222" not in parent_content["email"]["html"]
    assert "#222222" in child_content["email"]["html"] and "#111111" not in child_content["email"]["html"]
    assert "Parent St" in child_content["email"]["html"]  # not set by the child: inherited
    assert child_content["email"]["from_email"] == "parent@acme.example"


def test_a_sub_tenants_own_template_wins(tenant):
    child = TenantFactory(parent=tenant)
    published(TemplateFactory(tenant=tenant, key="k", sms_text="parent"))
    published(TemplateFactory(tenant=child, key="k", sms_text="child"))
    assert send(child, "k", ["sms"])[1]["sms"]["text"] == "child"
    assert send(tenant, "k", ["sms"])[1]["sms"]["text"] == "parent"


def test_a_warm_send_costs_one_query(tenant):
    PartialFactory(tenant=tenant)
    published(TemplateFactory(tenant=tenant, key="k", sms_text="x {% render 'footer' %}"))
    send(tenant, "k", ["sms", "email"])
    with CaptureQueriesContext(connection) as queries:
        version, _ = send(tenant, "k", ["sms", "email"])
    assert len(queries) == 1  # which version is published now; the compiled one is cached
    assert services.template_get_published(tenant, "k") is version


def test_publish_snapshots_layout_and_partials(tenant):
    footer = PartialFactory(tenant=tenant, body="Old footer")
    layout = LayoutFactory(tenant=tenant)
    template = TemplateFactory(tenant=tenant, key="k", layout=layout, sms_text="{% render 'footer' %}")
    version = published(template)
    assert version.source["partials"] == {"footer": "Old footer"}
    assert version.source["layout"]["name"] == layout.name
    footer.body = "New footer"
    footer.save()
    assert send(tenant, "k", ["sms"])[1]["sms"]["text"] == "Old footer"  # versions never change


def test_a_template_with_errors_cannot_be_published(tenant):
    template = TemplateFactory(tenant=tenant, sms_text="{% render 'gone' %}")
    with pytest.raises(InvalidInput) as caught:
        published(template)
    assert caught.value.fields == {"sms_text": ["Line 1, column 11: there is no partial named 'gone'."]}
    assert not TemplateVersion.objects.exists()


def test_sms_over_the_limit_with_the_sample_data_cannot_be_published(tenant, settings):
    settings.SIGNALBOX_SMS_MAX_SEGMENTS = 1
    template = TemplateFactory(tenant=tenant, sms_text="{{ data.text }}", email_subject="", email_body="",
                               sample_data={"data": {"text": "x" * 200}})
    with pytest.raises(InvalidInput) as caught:
        published(template)
    assert "2 segments, more than the limit of 1" in caught.value.fields["sms_text"][0]


def test_revert_makes_a_new_version_with_the_old_content_and_restores_the_draft(tenant):
    template = TemplateFactory(tenant=tenant, key="k", sms_text="one")
    TemplateLocaleFactory(template=template, locale="de", sms_text="eins")
    first = published(template)
    Template.objects.filter(pk=template.pk).update(sms_text="two")
    template.locales.all().delete()
    template.refresh_from_db()
    published(template)
    third = services.template_version_revert(version=first, user=None)
    assert third.number == 3 and third.comment == "Revert to version 1."
    assert send(tenant, "k", ["sms"])[1]["sms"]["text"] == "one"
    template.refresh_from_db()
    assert template.sms_text == "one" and list(template.locales.values_list("locale", "sms_text")) == [
        ("de", "eins")]
    assert template.history.first().history_change_reason == "Reverted to version 1"


def test_rendered_content_passes_the_send_apis_content_checks(tenant):
    """The pipeline hands template content to providers as if the API had sent it."""
    from apps.messaging import intake

    published(TemplateFactory(tenant=tenant, key="k", push_title="t", inbox_title="t", chat_text="c",
                              webhook_body='{"a": "b"}'))
    channels = ["email", "sms", "push", "chat", "webhook", "inbox"]
    _, content = send(tenant, "k", channels)
    assert intake._content({"content": content}, channels) == content
