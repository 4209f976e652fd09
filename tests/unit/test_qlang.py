"""The q parser (ngsi/qlang.py): valid expressions give the expected AST, invalid ones say why."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal

import pytest

from ngsi.errors import ErrorType, NgsiError
from ngsi.qast import (
    And,
    AttributePath,
    Boolean,
    Comparison,
    DateTimeValue,
    DateValue,
    Existence,
    Number,
    Operator,
    Or,
    Pattern,
    Range,
    Text,
    TimeValue,
    Uri,
    ValueList,
    parse_stored_temporal,
)
from ngsi.qlang import (
    parse_q,
)
from ngsi.qregex import RegexClass, parse_pattern

P = AttributePath
EQ, NE, GT, GE, LT, LE = (Operator(op) for op in ("==", "!=", ">", ">=", "<", "<="))


def number(text: str) -> Number:
    return Number(Decimal(text))


def exists(name: str) -> Existence:
    return Existence(P(name))


def char(letters: str) -> RegexClass:
    return RegexClass(tuple((ord(c), ord(c)) for c in sorted(letters)))


def pattern(source: str) -> Pattern:
    """The Pattern of a `~=` whose regular expression is `source`."""
    return Pattern(source, parse_pattern(source))


VALID = [
    ("temperature", exists("temperature")),
    ("temperature==20", Comparison(P("temperature"), EQ, number("20"))),
    ("temperature!=20", Comparison(P("temperature"), NE, number("20"))),
    ("speed>50", Comparison(P("speed"), GT, number("50"))),
    ("speed>=50", Comparison(P("speed"), GE, number("50"))),
    ("speed<50", Comparison(P("speed"), LT, number("50"))),
    ("speed<=50", Comparison(P("speed"), LE, number("50"))),
    ("t==-1.5e3", Comparison(P("t"), EQ, number("-1.5e3"))),
    ("t==0.25", Comparison(P("t"), EQ, number("0.25"))),
    ("t==1E-2", Comparison(P("t"), EQ, number("0.01"))),
    ("t==-0", Comparison(P("t"), EQ, number("-0"))),
    ('brandName!="Mercedes"', Comparison(P("brandName"), NE, Text("Mercedes"))),
    ('n=="a\\"b\\\\c\\u00e9\\n\\/"', Comparison(P("n"), EQ, Text('a"b\\cé\n/'))),
    ('n=="\\ud83d\\ude00"', Comparison(P("n"), EQ, Text("😀"))),
    ('n=="a;b|c)(,.."', Comparison(P("n"), EQ, Text("a;b|c)(,.."))),
    ('n==""', Comparison(P("n"), EQ, Text(""))),
    ("a==true", Comparison(P("a"), EQ, Boolean(True))),
    ("a!=false", Comparison(P("a"), NE, Boolean(False))),
    ("isParked==urn:ngsi-ld:Park:1", Comparison(P("isParked"), EQ, Uri("urn:ngsi-ld:Park:1"))),
    ('isParked=="urn:ngsi-ld:Park:1"', Comparison(P("isParked"), EQ, Text("urn:ngsi-ld:Park:1"))),
    ("a==https://example.org/x?y=1#z", Comparison(P("a"), EQ, Uri("https://example.org/x?y=1#z"))),
    ("t>=2018-12-04T12:00:00Z", Comparison(P("t"), GE, DateTimeValue(datetime(2018, 12, 4, 12)))),
    (
        "t>=2018-12-04T12:00:00.5+01:00",
        Comparison(P("t"), GE, DateTimeValue(datetime(2018, 12, 4, 11, 0, 0, 500000))),
    ),
    (
        "t<2018-12-31T23:30:00-01:00",
        Comparison(P("t"), LT, DateTimeValue(datetime(2019, 1, 1, 0, 30))),
    ),
    ("d==2018-12-04", Comparison(P("d"), EQ, DateValue(date(2018, 12, 4)))),
    ("t<12:30:00Z", Comparison(P("t"), LT, TimeValue(time(12, 30)))),
    ("t<12:30:00.25Z", Comparison(P("t"), LT, TimeValue(time(12, 30, 0, 250000)))),
    ("x==1..5", Comparison(P("x"), EQ, Range(number("1"), number("5")))),
    ("x==1.5..2.5", Comparison(P("x"), EQ, Range(number("1.5"), number("2.5")))),
    ('x!="a".."m"', Comparison(P("x"), NE, Range(Text("a"), Text("m")))),
    (
        "x==2018-01-01T00:00:00Z..2018-02-01T00:00:00Z",
        Comparison(
            P("x"),
            EQ,
            Range(DateTimeValue(datetime(2018, 1, 1)), DateTimeValue(datetime(2018, 2, 1))),
        ),
    ),
    (
        'x=="a","b",3,true,urn:x:y',
        Comparison(
            P("x"),
            EQ,
            ValueList((Text("a"), Text("b"), number("3"), Boolean(True), Uri("urn:x:y"))),
        ),
    ),
    ("a;b", And((exists("a"), exists("b")))),
    ("a|b", Or((exists("a"), exists("b")))),
    ("a;b|c", Or((And((exists("a"), exists("b"))), exists("c")))),
    ("a|b;c", Or((exists("a"), And((exists("b"), exists("c")))))),
    ("(a|b);c", And((Or((exists("a"), exists("b"))), exists("c")))),
    ("((a))", exists("a")),
    ("(a;b);c", And((exists("a"), exists("b"), exists("c")))),
    ("a|(b|c)", Or((exists("a"), exists("b"), exists("c")))),
    (
        '((speed>50|rpm>3000);brandName=="Mercedes")',
        And(
            (
                Or(
                    (
                        Comparison(P("speed"), GT, number("50")),
                        Comparison(P("rpm"), GT, number("3000")),
                    )
                ),
                Comparison(P("brandName"), EQ, Text("Mercedes")),
            )
        ),
    ),
    (
        "temperature.observedAt>=2017-12-24T12:00:00Z",
        Comparison(
            P("temperature", meta="observedAt"), GE, DateTimeValue(datetime(2017, 12, 24, 12))
        ),
    ),
    ('a.unitCode=="CEL"', Comparison(P("a", meta="unitCode"), EQ, Text("CEL"))),
    ("a.datasetId==urn:x:1", Comparison(P("a", meta="datasetId"), EQ, Uri("urn:x:1"))),
    ("a.createdAt", Existence(P("a", meta="createdAt"))),
    ("sensor.rawdata", Existence(P("sensor", ("rawdata",)))),
    ("sensor.rawdata.modifiedAt", Existence(P("sensor", ("rawdata",), "modifiedAt"))),
    ("a.b.c", Existence(P("a", ("b", "c")))),
    ('address[city]=="Berlin"', Comparison(P("address", members=("city",)), EQ, Text("Berlin"))),
    (
        "sensor.rawdata[airquality.particulate]==40",
        Comparison(
            P("sensor", ("rawdata",), members=("airquality", "particulate")), EQ, number("40")
        ),
    ),
    ("a[b][c]", Existence(P("a", members=("b", "c")))),
    ("a[b.c][d]", Existence(P("a", members=("b", "c", "d")))),
    ("a[0]", Existence(P("a", members=("0",)))),
    ('name[en-GB]=="x"', Comparison(P("name", members=("en-GB",)), EQ, Text("x"))),
    ("name[*]", Existence(P("name", members=("*",)))),
    ("ns:temperature>1", Comparison(P("ns:temperature"), GT, number("1"))),
    ("ns:a.ns:b", Existence(P("ns:a", ("ns:b",)))),
    ("température>1", Comparison(P("température"), GT, number("1"))),
    ("温度>1", Comparison(P("温度"), GT, number("1"))),
    ("a_1.b2", Existence(P("a_1", ("b2",)))),
    ("a~=x", Comparison(P("a"), Operator.MATCHES, Pattern("x", char("x")))),
    ("a!~=x", Comparison(P("a"), Operator.NOT_MATCHES, Pattern("x", char("x")))),
    ("a~=New York", Comparison(P("a"), Operator.MATCHES, pattern("New York"))),
    ('a~="x;y"', Comparison(P("a"), Operator.MATCHES, pattern("x;y"))),
    (
        "a~=(foo|bar);b",
        And((Comparison(P("a"), Operator.MATCHES, pattern("(foo|bar)")), exists("b"))),
    ),
    ("a~=x|b", Or((Comparison(P("a"), Operator.MATCHES, pattern("x")), exists("b")))),
    ("(a~=x)", Comparison(P("a"), Operator.MATCHES, pattern("x"))),
    ("a~=[)|;]|b", Or((Comparison(P("a"), Operator.MATCHES, pattern("[)|;]")), exists("b")))),
    ("a~=[]a]", Comparison(P("a"), Operator.MATCHES, Pattern("[]a]", char("]a")))),
    ("a~=\\)", Comparison(P("a"), Operator.MATCHES, Pattern("\\)", char(")")))),
]


@pytest.mark.parametrize(("text", "expected"), VALID)
def test_valid_expressions_give_their_ast(text: str, expected: object) -> None:
    assert parse_q(text) == expected


INVALID = [
    ("", "q is empty"),
    ("a b", "character 2: spaces are only allowed inside quoted strings"),
    ("a==1 ", "character 5: spaces are only allowed"),
    (" a", "character 1: expected an attribute name, found ' '"),
    ("a=1", "character 2: '=' is not an operator; compare with '=='"),
    ("a===1", "character 4: unquoted value '=1'"),
    ("!a", "'!' \\(negation\\) is not part of the q language"),
    ("a==", "character 4: expected a value, found the end"),
    ("a==x", "character 4: unquoted value 'x' is not a number, boolean, DateTime"),
    ('a=="x', "character 4: this string has no closing"),
    ('a=="\\x"', "invalid escape '\\\\x'"),
    ('a=="\\u12"', "'\\\\u' needs four hexadecimal digits"),
    ('a=="\\u0000"', "\\\\u0000 and unpaired surrogates are not allowed"),
    ('a=="\\udc00"', "unpaired surrogates"),
    ('a=="\t"', "control characters must be escaped"),
    ("a==\x00", "character 4: NUL and surrogate characters are not allowed"),
    ("(a", "character 3: the '\\(' at character 1 is not closed"),
    ("a)", "character 2: unbalanced '\\)'"),
    ("()", "character 2: expected an attribute name, found '\\)'"),
    ("a;", "character 3: expected an attribute name, found the end"),
    ("a||b", "character 3: expected an attribute name"),
    (";a", "character 1: expected an attribute name"),
    ("a==1..", "expected a value, found the end"),
    ("a==..1", "character 4: expected a value, found '.'"),
    ('a==1.."z"', "a range needs two numbers, strings, DateTimes, Dates or Times of the same kind"),
    ("a==true..false", "a range needs two numbers"),
    ("a==5..1", "the range's low end is above its high end"),
    ("a>1..2", "a range needs '==' or '!=', not '>'"),
    ("a==1..2,3", "character 8: a value list cannot hold a range"),
    ("a>1,2", "a value list needs '==' or '!=', not '>'"),
    ("a>true", "'>' compares numbers, strings, DateTimes, Dates or Times"),
    ("a<=urn:x:y", "quote a URI to compare it as a string"),
    ("a==01", "unquoted value '01'"),
    ("a==1.", "unquoted value '1.'"),
    ("a==+1", "unquoted value '\\+1'"),
    ("a==1e1001", "number '1e1001' is out of range"),
    ("a==2018-13-01", "2018-13-01 is not a valid Date"),
    ("a==2019-02-29", "2019-02-29 is not a valid Date"),
    ("a==2018-12-04T25:00:00Z", "2018-12-04T25:00:00 is not a valid DateTime"),
    ("a==2018-12-04T12:00:00", "is not a DateTime \\(write 2018-12-04T12:00:00Z or ±hh:mm\\)"),
    ("a==2018-12-04T12:00:00.1234567Z", "has more than microsecond precision"),
    ("a==9999-12-31T23:00:00-02:00", "is out of range"),
    ("a==12:00:00", "unquoted value '12:00:00'"),
    ('type=="X"', "'type' is not an attribute"),
    ("id==urn:x:1", "'id' is not an attribute"),
    ("a.value>1", "'value' is not an attribute"),
    ("observedAt>2018-12-04T12:00:00Z", "'observedAt' is not an attribute"),
    ("a.observedAt.b", "character 1: observedAt must end the attribute path"),
    ("a.unitCode[x]", "unitCode must end the attribute path"),
    ("a[]", "character 3: expected a member name, found '\\]'"),
    ("a[b", "character 4: expected '\\]' or '.', found the end"),
    ("a.b.", "character 5: expected a sub-attribute name after '.'"),
    ("1a", "character 1: expected an attribute name, found '1'"),
    ("_a", "expected an attribute name, found '_'"),
    ("a:", "character 2: expected an operator or the end of the term, found ':'"),
    ("a{Device:b}==1", "linked-entity queries"),
    ("a~=", "character 4: expected a regular expression"),
    ("a~=)", "expected a regular expression"),
    ("a~=[", "character 4: regular expression, character 2: '\\[' is not closed"),
    ('a~="x)"', "character 4: regular expression, character 2: unbalanced '\\)'"),
    ("b;a~=x{2", "character 6: regular expression, character 3: malformed \\{n,m\\}"),
    ('a~="\\\\"', "unsupported escape '\\\\'"),
]


@pytest.mark.parametrize(("text", "message"), INVALID)
def test_invalid_expressions_are_invalid_requests(text: str, message: str) -> None:
    with pytest.raises(NgsiError, match=message) as raised:
        parse_q(text)
    assert raised.value.error_type is ErrorType.INVALID_REQUEST


TOO_COMPLEX = [
    ("(" * 17 + "a" + ")" * 17, {}, "q nests parentheses deeper than 16"),
    ("(" * 16 + "a" + ")" * 16, {"max_depth": 15}, "deeper than 15"),
    ("(a)", {"max_depth": 0}, "deeper than 0"),
    (";".join(["a"] * 65), {}, "more than 64 terms and values"),
    ("a;b;c", {"max_terms": 2}, "more than 2 terms"),
    ("a==" + ",".join(["1"] * 65), {}, "more than 64 terms"),
    ("(" * 3000 + "a" + ")" * 3000, {"max_depth": 10**6}, "q nests too deep"),
    ("a~=(?:a{255}){5}", {}, "the regular expression is too complex"),
]


@pytest.mark.parametrize(("text", "limits", "message"), TOO_COMPLEX)
def test_too_complex_expressions_are_refused(
    text: str, limits: dict[str, int], message: str
) -> None:
    with pytest.raises(NgsiError, match=message) as raised:
        parse_q(text, **limits)
    assert raised.value.error_type is ErrorType.TOO_COMPLEX_QUERY


@pytest.mark.parametrize(
    ("kind", "text", "expected"),
    [
        ("DateTime", "2018-12-04T12:00:00Z", datetime(2018, 12, 4, 12)),
        ("DateTime", "2018-12-04T12:00:00.5Z", datetime(2018, 12, 4, 12, 0, 0, 500000)),
        ("DateTime", "2018-12-04T12:00:00+01:00", None),
        ("DateTime", "2018-12-04T12:00:00.1234567Z", None),
        ("DateTime", "2019-02-29T12:00:00Z", None),
        ("DateTime", "0000-01-01T00:00:00Z", None),
        ("DateTime", "2018-12-04T24:00:00Z", None),
        ("DateTime", "2018-12-04", None),
        ("Date", "2018-12-04", date(2018, 12, 4)),
        ("Date", "2018-00-04", None),
        ("Time", "12:00:00Z", time(12)),
        ("Time", "12:00:00.25Z", time(12, 0, 0, 250000)),
        ("Time", "12:00:00", None),
        ("Time", "12:00:60Z", None),
    ],
)
def test_stored_temporal_values_are_recognised_strictly(
    kind: str, text: str, expected: object
) -> None:
    assert parse_stored_temporal(kind, text) == expected
