"""Monthly range partitions of `observations` on plain PostgreSQL, created on demand.

There is no DEFAULT partition (rows in it would block creating their month later), so the
writer makes sure every month of a batch has its partition before it copies the batch.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import sql

from storage.records import ObservationRow

logger = logging.getLogger(__name__)

Month = tuple[int, int]

#: Rows may be ObservationRow or plain tuples in its field order (the mapper builds those).
_OBSERVED_AT = ObservationRow._fields.index("observed_at")

#: Above this many months between a batch's oldest and newest reading, list the months
#: actually present instead of every month in between (one bad device clock must not
#: create decades of partitions).
_MAX_MONTH_SPAN = 3


def _month_of(moment: datetime) -> Month:
    utc = moment.astimezone(UTC)
    return utc.year, utc.month


def _next_month(month: Month) -> Month:
    year, number = month
    return (year + 1, 1) if number == 12 else (year, number + 1)


def _months_between(first: Month, last: Month) -> list[Month]:
    months = [first]
    while months[-1] < last:
        months.append(_next_month(months[-1]))
    return months


def months_of(rows: Sequence[tuple[Any, ...]]) -> list[Month]:
    """The UTC months a batch of observations falls in, plus the month after the newest."""
    if not rows:
        return []
    times: list[datetime] = [row[_OBSERVED_AT] for row in rows]
    first, last = _month_of(min(times)), _month_of(max(times))
    span = (last[0] - first[0]) * 12 + last[1] - first[1]
    if span <= _MAX_MONTH_SPAN:
        months = _months_between(first, last)
    else:
        months = sorted({_month_of(moment) for moment in times})
    # Creating next month's partition ahead of time keeps the month boundary, when every
    # worker would otherwise need the same new partition at once, free of DDL.
    return [*months, _next_month(last)]


def partition_name(month: Month) -> str:
    """The name of a month's partition, e.g. observations_y2024m01."""
    return f"observations_y{month[0]:04d}m{month[1]:02d}"


class MonthlyPartitions:
    """Creates monthly partitions of `observations` as needed, remembering those known to exist."""

    def __init__(self) -> None:
        #: Month → whether its partition is ours by name (so COPY may target it directly).
        self._known: dict[Month, bool] = {}

    def forget(self) -> None:
        """Drop the cache (after partitions were detached or dropped by retention)."""
        self._known.clear()

    def prepare(self, conn: psycopg.Connection, rows: Sequence[tuple[Any, ...]]) -> str:
        """Make sure `rows` have partitions; returns the table to COPY them into.

        That is the month's partition itself when the whole batch falls in one month (the
        usual case): COPY then skips tuple routing, which costs about a third of the time.
        """
        months = months_of(rows)
        self.ensure(conn, months)
        # months_of lists the batch's months and then the one after the newest.
        if len(months) == 2 and self._known[months[0]]:
            return partition_name(months[0])
        return "observations"

    def ensure(self, conn: psycopg.Connection, months: Iterable[Month]) -> list[str]:
        """Create the partitions for `months` not yet known; each in its own short transaction.

        CREATE TABLE ... PARTITION OF takes an ACCESS EXCLUSIVE lock on the parent, so it
        must not run inside a batch transaction: the lock would be held for the whole batch
        and two workers doing so would deadlock on each other's row locks.
        """
        created: list[str] = []
        for month in months:
            if month in self._known:
                continue
            outcome = _create_partition(conn, month)
            if outcome == "created":
                created.append(partition_name(month))
            self._known[month] = outcome != "covered"
        return created


def _create_partition(conn: psycopg.Connection, month: Month) -> str:
    """ "created", "exists" (under our name) or "covered" (by a partition of another name)."""
    start = datetime(month[0], month[1], 1, tzinfo=UTC)
    end_year, end_month = _next_month(month)
    end = datetime(end_year, end_month, 1, tzinfo=UTC)
    statement = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {partition} PARTITION OF {parent}"
        " FOR VALUES FROM ({start}) TO ({end})"
    ).format(
        partition=sql.Identifier(partition_name(month)),
        parent=sql.Identifier("observations"),
        start=sql.Literal(start),
        end=sql.Literal(end),
    )
    try:
        with conn.transaction():
            exists = conn.execute("SELECT to_regclass(%s)", [partition_name(month)]).fetchone()
            if exists != (None,):
                return "exists"
            conn.execute(statement)
    except (psycopg.errors.DuplicateTable, psycopg.errors.UniqueViolation):
        # Another worker created the same partition between our check and our CREATE.
        return "exists"
    except psycopg.errors.InvalidObjectDefinition as error:
        # "would overlap partition ...": someone made a partition of their own for this month.
        logger.info("month %04d-%02d is covered by another partition: %s", *month, error)
        return "covered"
    logger.info("created partition %s", partition_name(month))
    return "created"
