import factory

from apps.content import services
from apps.content.models import Brand, Layout, Partial, Template, TemplateLocale
from apps.tenants.tests.factories import TenantFactory

MJML_LAYOUT = (
    "<mjml><mj-body background-color=\"{{ tenant.background_color }}\">"
    "<mj-section><mj-column>{{ content }}</mj-column></mj-section>"
    "<mj-section><mj-column><mj-text>{% render 'footer' %}</mj-text></mj-column></mj-section>"
    "</mj-body></mjml>"
)


class LayoutFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Layout

    tenant = factory.SubFactory(TenantFactory)
    name = factory.Sequence(lambda n: f"layout-{n}")
    body = MJML_LAYOUT


class PartialFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partial

    tenant = factory.SubFactory(TenantFactory)
    name = "footer"
    body = '{{ tenant.legal_address }} <a href="{{ message.unsubscribe_url }}">Unsubscribe</a>'


class BrandFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Brand

    tenant = factory.SubFactory(TenantFactory)


class TemplateFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Template

    tenant = factory.SubFactory(TenantFactory)
    key = factory.Sequence(lambda n: f"template-{n}")
    name = factory.LazyAttribute(lambda t: t.key.title())
    email_subject = "Hello {{ recipient.first_name | default: 'there' }}"
    email_body = ("<mj-text>Hi {{ recipient.first_name }}, your total is "
                  "{{ data.total | money: '$' }}.</mj-text>")
    sms_text = "Hi {{ recipient.first_name }}: {{ data.total | money }}"


class TemplateLocaleFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TemplateLocale

    template = factory.SubFactory(TemplateFactory)
    tenant = factory.LazyAttribute(lambda row: row.template.tenant)
    locale = "pt"


def published(template: Template, user=None):
    """Publish the template's draft; returns the version."""
    return services.template_version_publish(template=template, user=user)
