"""Statements prepared once on a PostgreSQL connection: `PREPARE` the first time it runs one,
then `EXECUTE` with the values, so that PostgreSQL parses, analyses and plans it once.

For the few statements of hot paths, run once per request or per message. A connection's
statements are kept in a registry by its psycopg connection (a new connection starts empty);
PostgreSQL keeps them, through rollbacks, until that connection ends. Only on connections kept
between requests (`CONN_MAX_AGE` not 0): a connection made for one request would prepare for
every request, and behind a pooler in transaction mode (pgbouncer), which must have
`CONN_MAX_AGE = 0`, the next statement may reach another server connection. Django's own
prepared statements (psycopg's `prepare_threshold`) stay off: psycopg deallocates all of a
connection's statements at each rollback, these included.
"""

import itertools
import re
import weakref

_held: "weakref.WeakKeyDictionary[object, dict[str, str | None]]" = weakref.WeakKeyDictionary()
_numbers = itertools.count(1)
_NAMED = re.compile(r"%\((\w+)\)s")


def kept(connection) -> bool:
    """Whether statements may be prepared on this Django connection."""
    return connection.vendor == "postgresql" and connection.settings_dict["CONN_MAX_AGE"] != 0


def held(connection) -> dict[str, str | None]:
    """This connection's statements: their SQL → their name (None: decided not to prepare)."""
    return _held.setdefault(connection.connection, {})


def new_name(prefix: str) -> str:
    return f"{prefix}_{next(_numbers)}"


def execute_prepared(cursor, sql: str, params: dict) -> None:
    """Run `sql`, whose placeholders are all named (`%(name)s`, each cast to its type so that
    PREPARE knows it), as a statement prepared on the cursor's connection: PREPARE and EXECUTE in
    one round trip the first time. Without a kept connection, `sql` itself. The cursor is left on
    the EXECUTE's result."""
    connection = cursor.db
    if not kept(connection):
        cursor.execute(sql, params)
        return
    names = list(dict.fromkeys(_NAMED.findall(sql)))
    values = [params[name] for name in names]
    statements = held(connection)
    name = statements.get(sql) or new_name("signalbox")
    execute = f"EXECUTE {name}({', '.join(['%s'] * len(values))})"
    if sql in statements:
        cursor.execute(execute, values)
        return
    positional = _NAMED.sub(lambda m: f"${names.index(m[1]) + 1}", sql)
    cursor.execute(f"PREPARE {name} AS {positional}; {execute}", values)
    # Kept once both ran: had the EXECUTE failed, the statement would stay prepared, unused.
    statements[sql] = name
    cursor.nextset()
