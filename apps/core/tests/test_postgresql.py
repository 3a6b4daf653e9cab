"""The health check of apps.core.postgresql: no round trip while the server has said nothing, Django's
`SELECT 1` (and a reconnect) once it has."""

import time

import pytest
from django.db import DatabaseError, connection, connections, transaction

from apps.core.postgresql import prepared

pytestmark = [
    pytest.mark.skipif("connection.vendor != 'postgresql'", reason="PostgreSQL's backend"),
    pytest.mark.django_db,
]


@pytest.fixture
def other():
    """A second connection to the test database, persistent and health-checked as the web's are."""
    wrapper = connections.create_connection("default")
    wrapper.settings_dict = {**wrapper.settings_dict, "CONN_MAX_AGE": 60, "CONN_HEALTH_CHECKS": True}
    wrapper.health_check_enabled = True
    wrapper.ensure_connection()
    yield wrapper
    wrapper.close()


def _start_request(wrapper):
    """What Django does at a request's start (request_started) and at its first query."""
    wrapper.close_if_unusable_or_obsolete()
    return wrapper.cursor()


def test_the_engine_is_used():
    assert type(connections["default"]).__module__ == "apps.core.postgresql.base"


def test_an_idle_connection_is_kept_without_a_query(other, monkeypatch):
    before = other.connection
    monkeypatch.setattr(type(other), "is_usable", lambda self: pytest.fail("SELECT 1 was sent"))
    with _start_request(other) as cursor:
        assert other.connection is before
        cursor.execute("SELECT 2")
        assert cursor.fetchone() == (2,)


def test_a_terminated_connection_is_replaced_before_the_request_uses_it(other):
    before = other.connection
    pid = before.info.backend_pid
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
    time.sleep(0.2)  # the server's notice reaches the socket
    with _start_request(other) as cursor:
        assert other.connection is not before
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != pid


SUM = "SELECT %(a)s::int + %(b)s::int, %(a)s::int"


def _prepared_here(cursor) -> list[str]:
    cursor.execute("SELECT name FROM pg_prepared_statements WHERE statement LIKE %s",
                   ["%AS SELECT $1::int + $2::int%"])
    return [name for (name,) in cursor.fetchall()]


def _run(cursor, sql, params):
    cursor.execute(*prepared.statement(cursor, sql, params))
    return cursor.fetchone()


def test_a_statement_is_prepared_once_per_connection_and_outlives_rollbacks(other):
    with other.cursor() as cursor:
        assert _run(cursor, SUM, {"a": 1, "b": 2}) == (3, 1)
        [name] = _prepared_here(cursor)
        assert prepared.statement(cursor, SUM, {"b": 1, "a": 5}) == (f"EXECUTE {name}(%s, %s)", [5, 1])
        assert _run(cursor, SUM, {"b": 1, "a": 5}) == (6, 5)
    with pytest.raises(DatabaseError), transaction.atomic(using=other.alias), other.cursor() as cursor:
        _run(cursor, SUM, {"a": "x", "b": 1})
    with other.cursor() as cursor:
        assert _run(cursor, SUM, {"a": 2, "b": 2}) == (4, 2)
        assert _prepared_here(cursor) == [name]
    other.close()
    with other.cursor() as cursor:
        assert _prepared_here(cursor) == []
        assert _run(cursor, SUM, {"a": 3, "b": 3}) == (6, 3)
        assert len(_prepared_here(cursor)) == 1


def test_positional_placeholders_and_none_at_all(other):
    with other.cursor() as cursor:
        assert _run(cursor, "SELECT %s::int * %s::int", [6, 7]) == (42,)
        sql, params = prepared.statement(cursor, "SELECT 1 + 1", [])
        assert sql.startswith("EXECUTE ") and "(" not in sql and params == []
        cursor.execute(sql, params)
        assert cursor.fetchone() == (2,)


def test_integers_as_an_array_literal(other):
    with other.cursor() as cursor:
        for values in [[3, 1, 2], [], [9_007_199_254_740_993]]:
            assert _run(cursor, "SELECT %s::bigint[]", [prepared.int_array(values)]) == (values,)


def test_nothing_is_prepared_on_a_connection_made_for_one_request(other):
    other.settings_dict["CONN_MAX_AGE"] = 0
    with other.cursor() as cursor:
        for a in range(3):
            assert prepared.statement(cursor, SUM, {"a": a, "b": 1}) == (SUM, {"a": a, "b": 1})
            assert _run(cursor, SUM, {"a": a, "b": 1}) == (a + 1, a)
        assert _prepared_here(cursor) == []
