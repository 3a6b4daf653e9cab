import pytest
from rest_framework.test import APIClient

from apps.events.tests.factories import api_key_for
from apps.tenants.tests.factories import TenantFactory


@pytest.fixture
def tenant(db):
    return TenantFactory(name="Alice Co", slug="alice")


@pytest.fixture
def api(tenant):
    """An API client authenticated with a secret key of `tenant`."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(tenant)}")
    return client


@pytest.fixture
def charlie_api(db):
    """A second tenant's client, which must never see the first tenant's data."""
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {api_key_for(TenantFactory(slug='charlie'))}")
    return client
