"""The portable regex dialect (ngsi/qregex.py): its AST, its refusals, the matcher, the ARE.

tests/integration/test_qsql.py checks that PostgreSQL, running `to_postgres`, agrees with
`search` through whole q expressions.
"""

from __future__ import annotations

import pytest

from ngsi.qregex import (
    PatternError,
    PatternTooComplex,
    RegexAlternation,
    RegexAnchor,
    RegexClass,
    RegexConcat,
    RegexNode,
    RegexRepeat,
    parse_pattern,
    search,
    to_postgres,
)


def char(letters: str) -> RegexClass:
    return RegexClass(tuple((ord(c), ord(c)) for c in sorted(letters)))


PATTERNS = [
    ("x", char("x")),
    ("(?i)x", char("Xx")),
    ("(?i)[a-c1]", RegexClass(((49, 49), (65, 67), (97, 99)))),
    ("(?i)[^x]", RegexClass(((88, 88), (120, 120)), negated=True)),
    (".", RegexClass(((10, 10),), negated=True)),
    ("\\d+", RegexRepeat(RegexClass(((48, 57),)), 1, None)),
    ("\\S", RegexClass(((9, 13), (32, 32)), negated=True)),
    ("[\\w-]", RegexClass(((45, 45), (48, 57), (65, 90), (95, 95), (97, 122)))),
    ("[a-c]{2,3}?", RegexRepeat(RegexClass(((97, 99),)), 2, 3)),
    ("a{2}", RegexRepeat(char("a"), 2, 2)),
    ("a{2,}", RegexRepeat(char("a"), 2, None)),
    ("a??", RegexRepeat(char("a"), 0, 1)),
    (
        "^a|b$",
        RegexAlternation(
            (
                RegexConcat((RegexAnchor(False), char("a"))),
                RegexConcat((char("b"), RegexAnchor(True))),
            )
        ),
    ),
    ("(?:ab)*", RegexRepeat(RegexConcat((char("a"), char("b"))), 0, None)),
    ("()", RegexConcat(())),
    ("", RegexConcat(())),
    ("\\t\\.", RegexConcat((char("\t"), char(".")))),
    ("a}]", RegexConcat((char("a"), char("}"), char("]")))),
    ("[]a]", char("]a")),
    ("New York", RegexConcat(tuple(char(c) for c in "New York"))),
]


@pytest.mark.parametrize(("source", "expected"), PATTERNS)
def test_patterns_parse_into_the_portable_ast(source: str, expected: RegexNode) -> None:
    assert parse_pattern(source) == expected


INVALID = [
    ("[", "character 2: '\\[' is not closed"),
    ("(", "character 2: '\\(' is not closed"),
    ("x)", "character 2: unbalanced '\\)'"),
    ("*", "character 2: '\\*' has nothing to repeat"),
    ("a|+", "'\\+' has nothing to repeat"),
    ("a**", "a quantifier cannot follow another"),
    ("a{2}{3}", "a quantifier cannot follow another"),
    ("a{1", "malformed \\{n,m\\}"),
    ("a{,2}", "malformed \\{n,m\\}"),
    ("a{3,2}", "repetition counts go up to 255, with n <= m"),
    ("a{256}", "repetition counts go up to 255"),
    ("(?=a)", "only \\(\\?:...\\) groups and a leading \\(\\?i\\) are supported"),
    ("x(?i)", "only \\(\\?:...\\) groups"),
    ("(a)\\1", "unsupported escape '\\\\1'"),
    ("\\bx", "unsupported escape '\\\\b'"),
    ("\\", "unsupported escape '\\\\'"),
    ("[[:alpha:]]", "write a literal '\\[' in a class"),
    ("[z-a]", "invalid range"),
    ("[\\d-z]", "invalid range"),
    ("[\\D]", "'\\\\D' is not supported inside"),
    ("^*", "an anchor cannot be repeated"),
]


@pytest.mark.parametrize(("source", "message"), INVALID)
def test_patterns_outside_the_dialect_are_refused(source: str, message: str) -> None:
    with pytest.raises(PatternError, match=message) as raised:
        parse_pattern(source)
    assert not isinstance(raised.value, PatternTooComplex)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("(" * 17 + "a" + ")" * 17, "the regular expression nests too deep"),
        ("(?:a{255}){5}", "the regular expression is too complex"),
        ("a" * 1001, "the regular expression is too long"),
    ],
)
def test_patterns_too_large_to_run_safely_are_refused(source: str, message: str) -> None:
    with pytest.raises(PatternTooComplex, match=message):
        parse_pattern(source)


SEARCHES = [
    ("erl", "Berlin", True),
    ("^Ber", "Berlin", True),
    ("lin$", "Berlin", True),
    ("^lin", "Berlin", False),
    ("berlin", "Berlin", False),
    ("(?i)berlin", "Berlin", True),
    ("(?i)é", "É", False),
    ("^a.c$", "abc", True),
    ("^a.c$", "a\nc", False),
    ("^a[^b]c$", "a\nc", True),
    ("^a\\sc$", "a\nc", True),
    ("b$", "ab\n", False),
    ("^b", "a\nb", False),
    ("\\d{2,3}", "a12", True),
    ("^\\d{2,3}$", "1234", False),
    ("a|^c", "bc", False),
    ("(foo|bar)+baz", "xbarfoobaz", True),
    ("^(a*)*$", "a" * 40 + "b", False),
    ("^(a|aa)+$", "a" * 60, True),
    ("😀", "x😀y", True),
    ("", "", True),
    ("x?", "", True),
    ("x", "", False),
    ("\\.", "a.b", True),
    ("[.]", "ab", False),
    ("\\W", "é", True),
    ("\\w", "é", False),
    ("^$", "", True),
    ("a{3}", "aa", False),
    ("^a{0,2}$", "aaa", False),
]


@pytest.mark.parametrize(("source", "text", "expected"), SEARCHES)
def test_search_finds_a_match_anywhere(source: str, text: str, expected: bool) -> None:
    assert search(parse_pattern(source), text) is expected


ARES = [
    ("[a-c]", "[a-c]"),
    (".", "[^\\u000a]"),
    ("(?i)x", "[Xx]"),
    ("(?i)[^x]", "[^Xx]"),
    ("a{2}", "[a]{2}"),
    ("a{2,}", "[a]{2,}"),
    ("a{0,3}", "[a]{0,3}"),
    ("\\d+", "[0-9]+"),
    ("é?", "[\\u00e9]?"),
    ("(?:ab)*", "(?:[a][b])*"),
    ("(a|b){2}", "(?:(?:[a]|[b])){2}"),
    ("^a|b$", "(?:^[a]|[b]$)"),
    ("", "(?:)"),
    ("😀", "[\\U0001f600]"),
    ("\\.", "[\\.]"),
    ("a-b", "[a][\\-][b]"),
    ("\\W", "[^0-9A-Z\\_a-z]"),
    ("[^\\s]", "[^\\u0009-\\u000d\\u0020]"),
]


@pytest.mark.parametrize(("source", "expected"), ARES)
def test_to_postgres_writes_an_unambiguous_are(source: str, expected: str) -> None:
    assert to_postgres(parse_pattern(source)) == expected


@pytest.mark.parametrize(
    ("node", "expected"),
    [(RegexClass(()), "[^\\u0001-\\U0010ffff]"), (RegexClass((), negated=True), ".")],
)
def test_empty_classes_become_classes_postgres_accepts(node: RegexNode, expected: str) -> None:
    assert to_postgres(node) == expected
