"""Django's PostgreSQL backend with a health check that costs no round trip while the connection is idle.

With `CONN_HEALTH_CHECKS`, Django runs `SELECT 1` before the first query of every request on a
persistent connection: a round trip and a statement for PostgreSQL on each API call. A server that
goes away (a restart, `pg_terminate_backend`, an idle timeout) first sends its termination notice
or closes the socket, so an idle connection whose socket has nothing to read has not been told to
go; only then is the `SELECT 1` worth sending. A peer that vanishes without a word (a cable pulled)
is caught by neither check before the operating system's TCP timeout, so nothing is lost.
"""

import select

from django.db.backends.postgresql import base


def _nothing_to_read(connection) -> bool:
    if connection.closed or connection.broken:
        return False
    readable, _, _ = select.select([connection.pgconn.socket], [], [], 0)
    return not readable


class DatabaseWrapper(base.DatabaseWrapper):
    def close_if_health_check_failed(self):
        if (
            self.connection is not None
            and self.health_check_enabled
            and not self.health_check_done
            and _nothing_to_read(self.connection)
        ):
            self.health_check_done = True
            return
        super().close_if_health_check_failed()
