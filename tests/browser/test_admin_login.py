"""A real browser logs into the admin."""

import pytest

from apps.tenants.models import Role
from apps.tenants.tests.factories import TenantFactory, staff_member

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def log_in(page, live_server, username: str) -> None:
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    page.click("input[type=submit]")
    page.wait_for_selector("#content-main")


def test_marketer_sees_only_the_menu_entries_of_their_role(page, live_server, tmp_path):
    staff_member(tenant=TenantFactory(name="Acme"), role=Role.MARKETER, username="marketer")
    log_in(page, live_server, "marketer")
    menu = page.locator("#content-main").inner_text()
    page.screenshot(path=str(tmp_path / "marketer-admin.png"), full_page=True)
    assert "Recipients" in menu and "Tenants" in menu
    for hidden in ("API keys", "Memberships", "Users", "Groups"):
        assert hidden not in menu
    page.goto(f"{live_server.url}/admin/tenants/apikey/")
    assert "403 Forbidden" in page.content()


def test_tenant_admin_creates_an_api_key_and_sees_it_once(page, live_server):
    staff_member(tenant=TenantFactory(name="Acme"), role=Role.TENANT_ADMIN, username="boss")
    log_in(page, live_server, "boss")
    page.goto(f"{live_server.url}/admin/tenants/apikey/add/")
    page.select_option("#id_tenant", label="Acme")
    page.fill("#id_name", "Backend")
    page.click("input[name=_save]")
    token = page.input_value("#api-key-token")
    assert token.startswith("sb_sk_live_")
    page.click("text=Done, I have copied it")
    assert token.rsplit("_", 1)[1] not in page.content()
