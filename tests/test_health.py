from unittest import mock

import pytest
from django.db import OperationalError, connection


def test_healthz_answers_without_touching_the_database(client):
    # No django_db mark: any database access here would raise.
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_reports_each_dependency(client):
    response = client.get("/readyz")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"database", "broker", "cache"}


@pytest.mark.django_db
def test_readyz_is_503_when_the_database_is_down(client):
    with mock.patch.object(connection, "cursor", side_effect=OperationalError("connection refused")):
        response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["database"] == {
        "ok": False, "error": "OperationalError: connection refused"}


@pytest.mark.integration
@pytest.mark.django_db
def test_readyz_is_503_when_the_broker_is_unreachable(client, private_redis):
    from config.celery import app

    shared_broker = app.conf.broker_url
    app.conf.broker_url = private_redis.url
    try:
        assert client.get("/readyz").status_code == 200
        private_redis.stop()
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = shared_broker
    assert response.status_code == 503
    assert response.json()["checks"]["broker"]["ok"] is False
    assert response.json()["checks"]["database"]["ok"] is True
