"""Statements prepared once on a PostgreSQL connection: `PREPARE` the first time it needs one,
then `EXECUTE` with the values, so that PostgreSQL parses, analyses and plans it once.

For the few statements of hot paths, run once per request or per message. A connection's
statements are kept in a registry by its psycopg connection (a new connection starts empty);
PostgreSQL keeps them, through rollbacks, until that connection ends. Only on connections kept
between requests (`CONN_MAX_AGE` not 0): a connection made for one request would prepare for
every request, and behind a pooler in transaction mode (pgbouncer), which must have
`CONN_MAX_AGE = 0`, the next statement may reach another server connection. Django's own
prepared statements (psycopg's `prepare_threshold`) stay off: psycopg deallocates all of a
connection's statements at each rollback, these included. The values are still quoted into the
`EXECUTE` in Python: PostgreSQL takes no bound parameters in a utility statement.

PostgreSQL plans a prepared statement again after a schema change, but a migration that changes
the type of a column one of these statements returns makes its `EXECUTE` fail ("cached plan must
not change result type") until the connection is replaced, within `CONN_MAX_AGE`; restart the
web and worker processes after such a migration.
"""

import itertools
import re
import weakref

_held: "weakref.WeakKeyDictionary[object, dict[str, str | None]]" = weakref.WeakKeyDictionary()
_numbers = itertools.count(1)
_NAMED = re.compile(r"%\((\w+)\)s")


def int_array(values) -> str:
    """Integers as an array literal (`{1,2,3}`), for a placeholder cast to `bigint[]`: psycopg
    quotes it as a string at half the cost of a list, which it inspects element by element to
    choose a type (psycopg's mogrify of the lock's values: 27 against 12 µs)."""
    return "{" + ",".join(str(int(value)) for value in values) + "}"


def kept(connection) -> bool:
    """Whether statements may be prepared on this Django connection."""
    return connection.vendor == "postgresql" and connection.settings_dict["CONN_MAX_AGE"] != 0


def held(connection) -> dict[str, str | None]:
    """This connection's statements: their SQL → their name (None: decided not to prepare)."""
    return _held.setdefault(connection.connection, {})


def new_name(prefix: str) -> str:
    return f"{prefix}_{next(_numbers)}"


def positional(sql: str) -> str:
    """`sql` with its placeholders, all `%s` or all `%(name)s`, as PostgreSQL's `$1`, `$2`, …
    (a name used twice is one number)."""
    names = list(dict.fromkeys(_NAMED.findall(sql)))
    if names:
        return _NAMED.sub(lambda m: f"${names.index(m[1]) + 1}", sql)
    numbers = itertools.count(1)
    return re.sub("%s", lambda _: f"${next(numbers)}", sql)


def prepare(cursor, sqls: list[str]) -> None:
    """Prepare on the cursor's connection, in one round trip, those of `sqls` not prepared there
    yet (where statements are prepared)."""
    connection = cursor.db
    if not kept(connection):
        return
    statements = held(connection)
    names = {sql: new_name("signalbox") for sql in dict.fromkeys(sqls) if sql not in statements}
    if names:
        cursor.execute("; ".join(f"PREPARE {name} AS {positional(sql)}" for sql, name in names.items()))
        statements.update(names)


def statement(cursor, sql: str, params: list | dict) -> tuple[str, list | dict]:
    """What to send for `sql` with `params` on the cursor's connection: `EXECUTE name(%s, …)` and
    the values once `sql` is prepared there (prepare(), the first time), or `sql`
    and `params` as they are where statements are not prepared. Every placeholder of `sql` is
    cast to its type, so that PREPARE knows it. To send alone or with others in one round trip."""
    connection = cursor.db
    if not kept(connection):
        return sql, params
    prepare(cursor, [sql])
    name = held(connection)[sql]
    if name is None:
        return sql, params
    if isinstance(params, dict):
        params = [params[key] for key in dict.fromkeys(_NAMED.findall(sql))]
    return (f"EXECUTE {name}({', '.join(['%s'] * len(params))})" if params else f"EXECUTE {name}"), params
