"""q compiled to SQL (storage/qsql.py) selects exactly the entities ngsi/qeval.py selects.

The SQL needs nothing of the schema or the storage backend, only PostgreSQL's SQL/JSON path:
it runs once, on a plain database of this module, in a temporary table of each test's
connection.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql
from psycopg.types.json import Jsonb

from ngsi.errors import ErrorType, NgsiError
from ngsi.qeval import evaluate
from ngsi.qlang import parse_q
from storage.database import connect, create_database_if_missing, drop_database
from storage.qsql import compile_q
from tests.support.fixtures import scratch_database_url
from tests.unit.test_qeval import CASES, entity, expand, prop, rel, typed

pytestmark = pytest.mark.integration


def _key(document: dict[str, Any]) -> str:
    # JSON text, not ==: in Python 1 == True, in JSON they differ.
    return json.dumps(document, sort_keys=True)


def _unique(documents: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    for document in documents:
        seen.setdefault(_key(document), document)
    return list(seen.values())


ENTITIES = _unique(
    [attributes for _, attributes, _ in CASES]
    + [
        {},
        entity(temperature=prop(20)),
        entity(temperature=prop(-1)),
        entity(temperature=prop("20")),
        entity(temperature=[prop(19), "junk", [prop(30)]]),
        entity(temperature={"type": ["Property", "Relationship"], "value": 5, "object": "urn:x:1"}),
        entity(temperature={"type": 5, "value": 5}),
        entity(temperature=prop(20, observedAt="2024-01-01T10:00:00Z", accuracy=prop(0.5))),
        entity(name=prop("Berlin\n")),
        entity(name=prop("BERLIN")),
        entity(name=prop("aé")),
        entity(name=prop(["Berlin", 3, None])),
        entity(name=prop({"en": "Berlin"})),
        entity(name={"type": "LanguageProperty", "languageMap": {"en": ["Paris", "Berlin"]}}),
        entity(when=prop(typed("DateTime", "2024-01-01T10:00:00.123456Z"))),
        entity(when=prop(["2020-05-01T00:00:00Z", typed("DateTime", "2021-01-01T00:00:00Z")])),
        entity(address=prop([{"city": "Gent"}, {"city": "Berlin"}])),
        entity(address=prop({"city": ["Gent", "Berlin"]})),
        entity(sensor=prop(1, rawdata=[prop(5, datasetId="urn:a"), prop(6)])),
        entity(isParked=[rel("urn:ngsi-ld:Park:1"), prop("urn:ngsi-ld:Park:2")]),
        entity(tags=prop([[1, 2], {"a": 1}, "red"])),
        entity(a=prop(False), t=prop(21), color=prop("blue")),
    ]
)
EXPRESSIONS = sorted({text for text, _, _ in CASES}) + [
    "temperature.accuracy==0.5",
    "temperature.accuracy.observedAt",
    'temperature!="junk"',
    "temperature==5",
    "temperature==urn:x:1",
    "name[en]~=(?i)^b",
    'address[city]=="Berlin"',
    "sensor.rawdata==6",
    "sensor.rawdata.datasetId==urn:a",
    "tags==1",
    "tags[a]==1",
    "when<2020-06-01T00:00:00Z",
]


@pytest.fixture(scope="module")
def plain_database() -> Iterator[str]:
    """An empty database of this module (no migrations, no extensions); dropped afterwards."""
    url = scratch_database_url("stadspuls_qsql")
    create_database_if_missing(url)
    try:
        yield url
    finally:
        drop_database(url)


@pytest.fixture
def table(plain_database: str) -> Iterator[psycopg.Connection]:
    """Temporary table `e(n, entity)` holding ENTITIES, n being the index."""
    with connect(plain_database) as conn:
        conn.execute("CREATE TEMPORARY TABLE e (n integer PRIMARY KEY, entity jsonb NOT NULL)")
        with conn.cursor() as cursor:
            cursor.executemany(
                "INSERT INTO e (n, entity) VALUES (%s, %s)",
                [(n, Jsonb(document)) for n, document in enumerate(ENTITIES)],
            )
        yield conn
        conn.rollback()


def selected_by_sql(
    conn: psycopg.Connection, text: str, expand: Callable[[str], str] = expand
) -> list[int]:
    condition = compile_q(parse_q(text), expand)
    query = sql.SQL("SELECT n FROM e WHERE {} ORDER BY n").format(condition)
    with conn.transaction():  # a savepoint: a failing query leaves the table usable
        return [row[0] for row in conn.execute(query)]


def selected_by_python(text: str, expand: Callable[[str], str] = expand) -> list[int]:
    expression = parse_q(text)
    return [n for n, document in enumerate(ENTITIES) if evaluate(expression, document, expand)]


@pytest.mark.parametrize("text", EXPRESSIONS)
def test_sql_selects_what_python_selects(table: psycopg.Connection, text: str) -> None:
    assert selected_by_sql(table, text) == selected_by_python(text)


@pytest.mark.parametrize(("text", "attributes", "expected"), CASES)
def test_sql_gives_the_expected_answer(
    table: psycopg.Connection, text: str, attributes: dict[str, Any], expected: bool
) -> None:
    index = [_key(document) for document in ENTITIES].index(_key(attributes))
    assert (index in selected_by_sql(table, text)) is expected


def test_attribute_iris_never_leave_their_quotes(table: psycopg.Connection) -> None:
    hostile = "urn:x:\"'\\$(@)\n--;DROP TABLE e;{}[*]"
    table.execute(
        "INSERT INTO e (n, entity) VALUES (%s, %s)",
        [len(ENTITIES), Jsonb({hostile: prop(1, **{"sub": prop("x")})})],
    )
    to_hostile = {"a": hostile, "sub": expand("sub")}.__getitem__
    assert selected_by_sql(table, "a==1", to_hostile) == [len(ENTITIES)]
    assert selected_by_sql(table, 'a.sub=="x"', to_hostile) == [len(ENTITIES)]
    assert table.execute("SELECT count(*) FROM e").fetchone() == (len(ENTITIES) + 1,)


def check_agreement(conn: psycopg.Connection, text: str) -> None:
    """Parsing fails only with NgsiError; what parses runs in SQL and agrees with qeval."""
    try:
        parse_q(text)
    except NgsiError as error:
        assert error.error_type in (ErrorType.INVALID_REQUEST, ErrorType.TOO_COMPLEX_QUERY)
        return
    assert selected_by_sql(conn, text) == selected_by_python(text)


PROPERTY_SETTINGS = settings(
    max_examples=300,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
TOKENS = [
    "a", "temperature", "name", "address", "tags", "when", "sensor", "rawdata", "[", "]",
    "city", "en", "*", ".", "..", "observedAt", "unitCode", "==", "!=", ">", ">=", "<", "<=",
    "=", "~=", "!~=", "!", ";", "|", "(", ")", '"', '"x"', '"Berlin"', "1", "-", "2.5", "e3",
    "20", "true", "urn:x:1", "2020-01-01T00:00:00Z", "2024-01-01", "12:00:00Z", "\\", ",",
    "?", "+", "{2}", "{1,3}", "^", "$", "(?i)", "(?:", "[^", "\\d", ".", " ", "\x00", "é", "😀",
]  # fmt: skip
PATHS = [
    "temperature", "temperature.observedAt", "temperature.unitCode", "temperature.accuracy",
    "name", "name[en]", "name[*]", "address[city]", "address[zip]", "address[*]", "tags",
    "when", "day", "at", "sensor", "sensor.rawdata", "sensor.rawdata[airquality.particulate]",
    "isParked", "r", "list", "category", "tickets[value]", "location[type]", "t", "a",
    "color", "humidity",
]  # fmt: skip
VALUES = [
    "20", "21.5", "-1", "0", "1e1", "40", '"Berlin"', '"red"', '"B"', "true", "false",
    "urn:ngsi-ld:Park:1", "2020-01-01T00:00:00Z", "2024-01-01T10:00:00.5Z", "2020-05-01",
    "12:00:00Z", "19..21", '"a".."z"', '"red","blue",3',
    "2020-01-01T00:00:00Z..2021-01-01T00:00:00Z",
]  # fmt: skip
REGEX_TOKENS = [
    "a", "b", "B", "e", "r", "l", "i", "n", "1", "2", ".", "^", "$", "*", "+", "?", "|", "(",
    ")", "(?:", "[", "]", "[^", "-", "{2}", "{0,3}", "\\d", "\\w", "\\s", "\\W", "\\.", "\n",
    "é", "É", "😀", " ", "x",
]  # fmt: skip


def _term(path: str, operator: str, value: str) -> str:
    return path if not operator else f"{path}{operator}{value}"


def _regex_term(path: str, operator: str, parts: list[str], fold: bool) -> str:
    regex = ("(?i)" if fold else "") + "".join(parts)
    return f"{path}{operator}{json.dumps(regex, ensure_ascii=False)}"


TERMS = st.one_of(
    st.builds(
        _term,
        st.sampled_from(PATHS),
        st.sampled_from(["", "==", "!=", ">", ">=", "<", "<="]),
        st.sampled_from(VALUES),
    ),
    st.builds(
        _regex_term,
        st.sampled_from(["name", "name[en]", "tags", "temperature.unitCode", "address[city]"]),
        st.sampled_from(["~=", "!~="]),
        st.lists(st.sampled_from(REGEX_TOKENS), max_size=8),
        st.booleans(),
    ),
)
EXPRESSIONS_STRATEGY = st.recursive(
    TERMS,
    lambda inner: st.one_of(
        inner.map(lambda text: f"({text})"),
        st.tuples(inner, st.sampled_from([";", "|"]), inner).map("".join),
    ),
    max_leaves=6,
)


@PROPERTY_SETTINGS
@given(text=st.text(max_size=60))
def test_random_text(table: psycopg.Connection, text: str) -> None:
    check_agreement(table, text)


@PROPERTY_SETTINGS
@given(text=st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map("".join))
def test_random_token_sequences(table: psycopg.Connection, text: str) -> None:
    check_agreement(table, text)


@PROPERTY_SETTINGS
@given(text=EXPRESSIONS_STRATEGY)
def test_random_expressions(table: psycopg.Connection, text: str) -> None:
    check_agreement(table, text)
