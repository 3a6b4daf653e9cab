"""The template editor in the admin: validation on save, preview, test send, publish, versions
(diff, revert), approval, and tenant scoping."""

import logging

import pytest
from django.urls import reverse

from apps.content.models import Template, TemplateVersion
from apps.content.tests.factories import BrandFactory, PartialFactory, TemplateFactory, published
from apps.delivery.models import ProviderConfig
from apps.events.tests.factories import EventFactory
from apps.recipients.tests.factories import RecipientFactory
from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = pytest.mark.django_db

NO_LOCALES = {"locales-TOTAL_FORMS": "0", "locales-INITIAL_FORMS": "0", "locales-MIN_NUM_FORMS": "0",
              "locales-MAX_NUM_FORMS": "1000"}


@pytest.fixture
def tenant():
    return TenantFactory(name="Alice Co", slug="alice")


@pytest.fixture
def marketer(client, tenant):
    user = staff_member(tenant=tenant, role=Role.MARKETER, username="mara", email="mara@alice.example")
    client.force_login(user)
    return user


def url(name: str, template, *args) -> str:
    return reverse(f"admin:content_template_{name}", args=[template.pk, *args])


def form_data(tenant, **fields) -> dict:
    data = {"tenant": tenant.pk, "key": "welcome", "name": "Welcome", "category": "general",
            "email_format": "mjml", "sample_data": '{"recipient": {"first_name": "Ada"}, "data": {}}',
            "email_subject": "Hi {{ recipient.first_name }}", "email_body": "<mj-text>Hello</mj-text>",
            **NO_LOCALES}
    data.update(fields)
    return data


def test_errors_are_shown_on_their_fields_and_nothing_is_saved(client, marketer, tenant):
    response = client.post(reverse("admin:content_template_add"), form_data(
        tenant, sms_text="Hi {{ recipient.first_name | upcase | nope }}",
        email_body="<mj-section>\n  </mj-column>\n</mj-section>", webhook_body='{"a": 1,}',
        push_title="", push_body="", push_image="https://img.example/x.png"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["sms_text"] == ["Line 1, column 39: unknown filter 'nope'"]
    assert errors["email_body"] == ["Invalid MJML: line 3, column 14: unexpected token"]
    assert errors["webhook_body"] == ["Invalid JSON: line 1, column 9: Expecting property name enclosed in "
                                      "double quotes"]
    assert errors["push_title"] == ["Required when push is used (or body)."]
    assert not Template.objects.exists()


def test_a_sample_too_deep_is_a_form_error(client, marketer, tenant):
    deep = "1"
    for _ in range(30):
        deep = '{"x": ' + deep + "}"
    response = client.post(reverse("admin:content_template_add"), form_data(
        tenant, sample_data='{"data": ' + deep + "}"))
    assert response.context["adminform"].form.errors["sample_data"] == ["nested deeper than 20 levels"]


def test_a_valid_draft_is_saved_and_locale_variants_are_checked_too(client, marketer, tenant):
    data = form_data(tenant, sms_text="Hi {{ recipient.first_name }}\r\nBye", **{
        "locales-TOTAL_FORMS": "1", "locales-0-locale": "pt_br", "locales-0-email_format": "mjml",
        "locales-0-sms_text": "Olá {% if recipient.first_name %}{{ recipient.first_name }}"})
    response = client.post(reverse("admin:content_template_add"), data)
    assert response.status_code == 200
    [inline] = response.context["inline_admin_formsets"]
    assert inline.formset.forms[0].errors["sms_text"] == [
        "Expected tag endif, found end of expression (a block is not closed)"]
    data["locales-0-sms_text"] = "Olá {{ recipient.first_name }}"
    response = client.post(reverse("admin:content_template_add"), data)
    assert response.status_code == 302
    template = Template.objects.get(key="welcome")
    assert list(template.locales.values_list("locale", "tenant_id")) == [("pt-BR", tenant.pk)]
    assert template.sms_text == "Hi {{ recipient.first_name }}\nBye"  # LF, as browsers' CRLF is stored
    assert template.history.first().history_user == marketer


def test_save_and_preview_renders_every_channel(client, marketer, tenant):
    response = client.post(reverse("admin:content_template_add"), form_data(
        tenant, _preview="1", sms_text="Hi {{ recipient.first_name }} " + "x" * 160,
        push_title="Hey {{ recipient.first_name }}", inbox_title="Card for {{ recipient.first_name }}",
        webhook_body='{"who": "{{ recipient.first_name }}"}'))
    template = Template.objects.get()
    assert response.status_code == 302 and response.url == url("preview", template)
    page = client.get(response.url).content.decode()
    assert 'id="email-frame"' in page and 'sandbox=""' in page and "Hello" in page
    assert 'id="email-subject">Hi Ada<' in page
    assert "167 characters · GSM-7 · 2 segments" in page
    assert "Hey Ada" in page and "Card for Ada" in page and "&quot;who&quot;: &quot;Ada&quot;" in page


def test_preview_with_a_recipient_and_their_latest_event(client, marketer, tenant):
    template = TemplateFactory(tenant=tenant, sms_text="{{ recipient.first_name }} bought {{ data.item }}")
    recipient = RecipientFactory(tenant=tenant, external_id="user-1", attributes={"first_name": "Grace"})
    EventFactory(tenant=tenant, recipient=recipient, properties={"item": "old"},
                 occurred_at="2026-01-01T00:00Z")
    EventFactory(tenant=tenant, recipient=recipient, name="order", properties={"item": "shoes"},
                 occurred_at="2026-02-01T00:00Z")
    page = client.get(url("preview", template), {"recipient": "user-1"}).content.decode()
    assert "Grace bought shoes" in page and "recipient user-1 and their latest event “order”" in page
    other = RecipientFactory(tenant=TenantFactory(), external_id="user-x")
    page = client.get(url("preview", template), {"recipient": other.external_id}).content.decode()
    assert "No recipient with this external id" in page


def test_send_a_test_through_the_tenants_provider(client, marketer, tenant, caplog):
    template = TemplateFactory(tenant=tenant)
    ProviderConfig.objects.create(tenant=tenant, name="Log email", channel="email", kind="log")
    with caplog.at_level(logging.INFO, logger="signalbox.log_provider"):
        response = client.post(url("preview", template), {"channel": "email", "to": "mara@alice.example"})
    assert response.status_code == 302
    assert "[Test] Hello there" in caplog.text and "mara@alice.example" in caplog.text
    response = client.post(url("preview", template), {"channel": "sms", "to": "12"})
    assert "A phone number in international format" in response.content.decode()


def test_publish_then_edit_and_see_the_diff_then_publish_again(client, marketer, tenant):
    template = TemplateFactory(tenant=tenant, key="k", sms_text="one")
    page = client.get(url("publish", template)).content.decode()
    assert "This will be the first version" in page
    response = client.post(url("publish", template), {"comment": "First!"})
    assert response.status_code == 302 and response.url == url("versions", template)
    template.refresh_from_db()
    assert template.published_version.number == 1 and template.published_version.comment == "First!"
    Template.objects.filter(pk=template.pk).update(sms_text="two")
    page = client.get(url("publish", template)).content.decode()
    assert "Changes since version 1" in page and "sms.text" in page
    client.post(url("publish", template), {"comment": "Second"})
    page = client.get(url("versions", template)).content.decode()
    assert "v2</a> <strong class=\"sb-live\">live</strong>" in page and "mara" in page and "Second" in page


def test_a_template_with_errors_cannot_be_published(client, marketer, tenant):
    partial = PartialFactory(tenant=tenant, name="legal", body="Legal")
    template = TemplateFactory(tenant=tenant, sms_text="{% render 'legal' %}")
    partial.delete()
    page = client.get(url("publish", template)).content.decode()
    assert "cannot be published" in page and "there is no partial named &#x27;legal&#x27;" in page
    client.post(url("publish", template))
    assert not TemplateVersion.objects.exists()


def test_diff_between_any_two_versions_and_revert(client, marketer, tenant):
    template = TemplateFactory(tenant=tenant, key="k", sms_text="one")
    published(template)
    Template.objects.filter(pk=template.pk).update(sms_text="two", push_title="new push")
    template.refresh_from_db()
    published(template)
    page = client.get(url("diff", template), {"a": "1", "b": "2"}).content.decode()
    assert "Changes from version 1 to version 2" in page
    assert "sms.text" in page and "push.title <small>(added)" in page
    assert client.get(url("diff", template), {"a": "9"}).status_code == 404
    response = client.post(url("version", template, 1, "revert"))
    assert response.status_code == 302
    template.refresh_from_db()
    assert (template.published_version.number, template.sms_text, template.push_title) == (3, "one", "")
    assert "No differences." in client.get(url("diff", template), {"a": "1", "b": "3"}).content.decode()
    history = client.get(reverse("admin:content_template_history", args=[template.pk])).content.decode()
    assert "Reverted to version 1" in history and "mara" in history
    edits = client.get(url("versions", template)).content.decode().split('id="edits"')[1]
    assert "(Reverted to version 1)" in edits and "mara" in edits


def test_edits_of_the_draft_and_its_locales_are_listed_with_who_made_them(client, marketer, tenant):
    client.post(reverse("admin:content_template_add"), form_data(tenant, sms_text="one", **{
        "locales-TOTAL_FORMS": "1", "locales-0-locale": "de", "locales-0-email_format": "mjml",
        "locales-0-sms_text": "eins"}))
    template = Template.objects.get()
    row = template.locales.get()
    data = form_data(tenant, sms_text="two", **{
        "locales-TOTAL_FORMS": "1", "locales-INITIAL_FORMS": "1", "locales-0-id": row.pk,
        "locales-0-template": template.pk, "locales-0-locale": "de", "locales-0-email_format": "mjml",
        "locales-0-sms_text": "zwei"})
    assert client.post(reverse("admin:content_template_change", args=[template.pk]), data).status_code == 302
    edits = client.get(url("versions", template)).content.decode().split('id="edits"')[1]
    assert edits.count("mara") == 4
    assert "changed sms_text" in edits and "locale de: changed sms_text" in edits
    assert "locale de: created" in edits and "<td>created</td>" in edits


@pytest.fixture
def approver(tenant):
    return staff_member(tenant=tenant, role=Role.TENANT_ADMIN, username="boss")


def test_with_approval_a_marketers_publish_waits_for_an_approver(client, marketer, approver, tenant):
    BrandFactory(tenant=tenant, require_approval=True)
    template = TemplateFactory(tenant=tenant, key="k", sms_text="one")
    assert "Request approval" in client.get(url("publish", template)).content.decode()
    client.post(url("publish", template), {"comment": "Please"})
    version = template.versions.get()
    template.refresh_from_db()
    assert version.state == "pending" and template.published_version is None
    response = client.post(url("version", template, 1, "approve"), {"comment": "self-approve"}, follow=True)
    assert "You may not approve templates in this tenant." in response.content.decode()
    version.refresh_from_db()
    assert version.state == "pending"

    client.force_login(approver)
    page = client.get(url("versions", template)).content.decode()
    assert "Approve and publish" in page
    client.post(url("version", template, 1, "approve"), {"comment": "Looks good"})
    version.refresh_from_db()
    template.refresh_from_db()
    assert (version.state, version.reviewed_by) == ("published", approver)
    assert version.review_comment == "Looks good"
    assert template.published_version == version


def test_a_rejection_needs_a_comment(client, marketer, approver, tenant):
    BrandFactory(tenant=tenant, require_approval=True)
    template = TemplateFactory(tenant=tenant, sms_text="one")
    client.post(url("publish", template))
    client.force_login(approver)
    response = client.post(url("version", template, 1, "reject"), {"comment": ""}, follow=True)
    assert "Say why it is rejected." in response.content.decode()
    client.post(url("version", template, 1, "reject"), {"comment": "Wrong tone"})
    version = template.versions.get()
    assert (version.state, version.review_comment) == ("rejected", "Wrong tone")
    template.refresh_from_db()
    assert template.published_version is None


def test_an_approver_publishes_directly(client, approver, tenant):
    BrandFactory(tenant=tenant, require_approval=True)
    template = TemplateFactory(tenant=tenant)
    client.force_login(staff_member(tenant=tenant, role=Role.MARKETER))
    client.post(url("publish", template))
    from apps.content import services

    services.template_version_publish(template=template, user=approver)
    states = list(template.versions.order_by("number").values_list("state", "review_comment"))
    assert states == [("rejected", "Superseded by version 2."), ("published", "")]


def test_only_an_approver_may_switch_approval_off(client, marketer, approver, tenant):
    brand = BrandFactory(tenant=tenant, require_approval=True)
    change = reverse("admin:content_brand_change", args=[brand.pk])
    page = client.get(change).content.decode()
    assert 'name="require_approval"' not in page  # read-only for a Marketer
    client.force_login(approver)
    response = client.post(change, {"tenant": tenant.pk, "require_approval": "false",
                                    "primary_color": "#000000"})
    assert response.status_code == 302
    brand.refresh_from_db()
    assert brand.require_approval is False


def test_another_tenants_templates_are_invisible(client, marketer, tenant):
    mine = TemplateFactory(tenant=tenant, key="mine")
    theirs = TemplateFactory(tenant=TenantFactory(slug="charlie"), key="theirs")
    published(theirs)
    listing = client.get(reverse("admin:content_template_changelist")).content.decode()
    assert "mine" in listing and "theirs" not in listing
    for name in ("preview", "publish", "versions", "diff"):
        assert client.get(url(name, theirs)).status_code == 404
    assert client.post(url("version", theirs, 1, "revert")).status_code == 404
    assert client.get(url("preview", mine)).status_code == 200


def test_support_may_look_but_not_change_or_publish(client, tenant):
    template = TemplateFactory(tenant=tenant)
    published(template)
    client.force_login(staff_member(tenant=tenant, role=Role.SUPPORT))
    assert client.get(url("preview", template)).status_code == 200
    assert client.get(url("versions", template)).status_code == 200
    assert client.get(url("publish", template)).status_code == 403
    test_send = client.post(url("preview", template), {"channel": "email", "to": "x@example.com"})
    assert test_send.status_code == 403
    assert client.post(url("version", template, 1, "revert")).status_code == 403


def test_layout_and_partial_forms_check_their_liquid_and_mjml(client, marketer, tenant):
    response = client.post(reverse("admin:content_layout_add"), {
        "tenant": tenant.pk, "name": "brand", "format": "mjml", "body": "<mjml><mj-body></mj-body></mjml>"})
    assert response.context["adminform"].form.errors["body"] == [
        "Put {{ content }} exactly once where the email body goes."]
    response = client.post(reverse("admin:content_partial_add"), {
        "tenant": tenant.pk, "name": "footer", "body": "{{ tenant.name | bogus }}"})
    assert response.context["adminform"].form.errors["body"] == ["Line 1, column 18: unknown filter 'bogus'"]
