"""alerts/rules.py and friends: rule validation, durations, scopes, notify targets and YAML."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from alerts.durations import describe_duration, format_duration, parse_duration
from alerts.rules import (
    CongestionRule,
    RateRule,
    RuleError,
    SilenceRule,
    ThresholdRule,
    WindowRule,
    dump_rules_yaml,
    load_rules_yaml,
    parse_rule,
    rule_document,
)
from alerts.scope import Scope

SQUARE = {
    "type": "Polygon",
    "coordinates": [[[3.70, 51.04], [3.74, 51.04], [3.74, 51.07], [3.70, 51.07], [3.70, 51.04]]],
}
BOWTIE = {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}


def rule_data(kind: str = "threshold", /, **fields: Any) -> dict[str, Any]:
    """A valid rule of `kind` as JSON-like data, with `fields` replaced (None removes one)."""
    data: dict[str, Any] = {
        "id": f"{kind}-rule",
        "name": f"a {kind} rule",
        "kind": kind,
        "scope": {"entity_type": "AirQualityObserved"},
        "category": "environment",
        "sub_category": "airPollution",
    }
    presets: dict[str, dict[str, Any]] = {
        "threshold": {"attribute": "pm25", "operator": "above", "level": 25},
        "window": {
            "attribute": "no2",
            "statistic": "mean",
            "window": "PT1H",
            "operator": "above",
            "level": 200,
        },
        "rate": {"attribute": "pm25", "operator": "above", "level": 10},
        "congestion": {"speed_below": 20, "occupancy_above": 0.3},
        "silence": {"silent_for": "PT30M"},
    }
    data.update(presets[kind])
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("PT10M", 600),
        ("PT1H", 3600),
        ("P1D", 86400),
        ("P1W", 604800),
        ("PT1H30M", 5400),
        ("PT0.5S", 0.5),
        ("pt15m", 900),
        ("P1DT2H", 93600),
        ("PT0S", 0),
        (90, 90),
        (1.5, 1.5),
        (timedelta(minutes=2), 120),
    ],
)
def test_durations_are_iso_8601_or_seconds(text: Any, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("P1M", "months or years, which have no fixed length"),
        ("P1Y", "months or years"),
        ("P1Y2D", "months or years"),
        ("10 minutes", "not an ISO 8601 duration"),
        ("P", "not an ISO 8601 duration"),
        ("PT", "not an ISO 8601 duration"),
        ("P1DT", "not an ISO 8601 duration"),
        (-5, "cannot be negative"),
        (True, "ISO 8601 text such as PT10M"),
        (float("nan"), "finite number"),
        ("P20000D", "at most"),
        ([1], "ISO 8601 text"),
    ],
)
def test_bad_durations_say_why(text: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_duration(text)


@pytest.mark.parametrize(
    ("seconds", "iso", "human"),
    [
        (600, "PT10M", "10 min"),
        (3600, "PT1H", "1 h"),
        (86400, "P1D", "1 d"),
        (5400, "PT1H30M", "1 h 30 min"),
        (90061, "P1DT1H1M1S", "1 d 1 h"),
        (0.25, "PT0.25S", "0.25 s"),
        (0, "PT0S", "0 s"),
    ],
)
def test_durations_format_back(seconds: float, iso: str, human: str) -> None:
    duration = timedelta(seconds=seconds)
    assert format_duration(duration) == iso
    assert parse_duration(iso) == duration
    assert describe_duration(duration) == human


@pytest.mark.parametrize("kind", ["threshold", "window", "rate", "congestion", "silence"])
def test_every_kind_parses_and_round_trips(kind: str) -> None:
    rule = parse_rule(rule_data(kind), tenant="gent")
    assert rule.kind == kind and rule.tenant == "gent"
    document = rule_document(rule)
    assert list(document)[:2] == ["id", "kind"]
    assert parse_rule(document) == rule


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("threshold", {"clear_level": 25.0, "min_duration": timedelta(0)}),
        ("window", {"clear_level": 200.0, "window": timedelta(hours=1)}),
        ("rate", {"clear_level": 10.0, "per": timedelta(hours=1), "absolute": False}),
        (
            "congestion",
            {
                "speed_clear": 20.0,
                "occupancy_clear": 0.3,
                "speed_attribute": "averageVehicleSpeed",
                "occupancy_attribute": "occupancy",
                "category": "traffic",
                "sub_category": "trafficJam",
            },
        ),
        ("silence", {"attribute": None, "below": None, "silent_for": timedelta(minutes=30)}),
    ],
)
def test_defaults(kind: str, expected: dict[str, Any]) -> None:
    data = rule_data(kind)
    if kind == "congestion":
        del data["category"], data["sub_category"]
    rule = parse_rule(data)
    assert {name: getattr(rule, name) for name in expected} == expected
    assert rule.severity == "medium" and rule.enabled and rule.notify == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (rule_data(clear_level=30), "clear_level 30 must be at or below level 25 for above"),
        (rule_data(operator="below", clear_level=20), "must be at or above level 25 for below"),
        (rule_data(level="high"), "level: Input should be a valid number"),
        (rule_data(level=float("inf")), "level: Input should be a finite number"),
        (rule_data(id="has space"), "id: String should match pattern"),
        (rule_data(id="x" * 101), "id: String should match pattern"),
        (rule_data(name=""), "name: String should have at least 1 character"),
        (rule_data(kind=None), "kind is missing"),
        (rule_data(kind="spike"), "kind 'spike' is not one of threshold, window"),
        (rule_data(threshold=3), "threshold: is not a known field here"),
        (rule_data(operator="over"), "operator: Input should be 'above' or 'below'"),
        (rule_data(severity="urgent"), "severity: Input should be 'informational'"),
        (rule_data(category="pollution"), "category: Input should be 'traffic'"),
        (rule_data(sub_category="airpollution"), "did you mean airPollution"),
        (rule_data(sub_category="smog"), "'smog' is not a Smart Data Models Alert subCategory"),
        (rule_data(min_duration="P1M"), "min_duration: 'P1M' names months or years"),
        (rule_data("window", window="PT0S"), "window must be longer than zero"),
        (rule_data("window", statistic="median"), "statistic: Input should be 'mean'"),
        (rule_data("rate", per=0), "per must be longer than zero"),
        (rule_data("rate", absolute=True, level=-1), "level and clear_level >= 0"),
        (rule_data("congestion", speed_clear=10), "speed_clear 10 must be at or above level 20"),
        (rule_data("congestion", occupancy_clear=0.5), "occupancy_clear 0.5 must be at or below"),
        (
            rule_data("congestion", occupancy_attribute="averageVehicleSpeed"),
            "speed_attribute and occupancy_attribute must differ",
        ),
        (rule_data("silence", silent_for=0), "silent_for must be longer than zero"),
        (rule_data("silence", below=0.5), "below needs attribute"),
        (rule_data("silence", silent_for="P1Y"), "silent_for: 'P1Y' names months or years"),
        ("not a mapping", "a rule is a mapping of fields, not str"),
    ],
)
def test_invalid_rules_say_what_to_fix(data: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rule(data)


def test_several_problems_are_all_reported() -> None:
    with pytest.raises(RuleError) as raised:
        parse_rule(rule_data(level="x", severity="urgent", sub_category="smog"))
    assert [problem.split(":")[0] for problem in raised.value.problems] == [
        "severity",
        "sub_category",
        "level",
    ]


@pytest.mark.parametrize(
    "scope",
    [
        {"entity": "urn:ngsi-ld:AirQualityObserved:gent-1"},
        {"device_model": "sds011"},
        {"entity_type": "AirQualityObserved"},
        {"area": SQUARE},
        {"area": SQUARE, "entity_type": "TrafficFlowObserved"},
        {"device_model": "telraam-s2", "entity_type": "ItemFlowObserved"},
        {"area": {"type": "MultiPolygon", "coordinates": [SQUARE["coordinates"]]}},
    ],
)
def test_valid_scopes(scope: dict[str, Any]) -> None:
    parsed = Scope.model_validate(scope)
    assert parsed.model_dump(exclude_none=True) == scope
    assert (parsed.geometry is not None) == ("area" in scope)


@pytest.mark.parametrize(
    ("scope", "message"),
    [
        ({}, "scope needs one of entity, device_model, entity_type or area"),
        ({"entity": "a", "device_model": "b"}, "scope has entity and device_model"),
        ({"device_model": "b", "area": SQUARE}, "scope has device_model and area"),
        ({"entity": "a", "entity_type": "T"}, "scope entity stands alone"),
        ({"entity": ""}, "at least 1 character"),
        ({"area": BOWTIE}, "area is not a valid GeoJSON Polygon"),
        ({"area": {"type": "Point", "coordinates": [3.7, 51.0]}}, "not type 'Point'"),
        ({"area": {"type": "Polygon", "coordinates": [[[0, 0], [1, 0], [0, 0]]]}}, "not a valid"),
        ({"entity_type": "T", "region": "gent"}, "scope.region: is not a known field"),
    ],
)
def test_invalid_scopes(scope: dict[str, Any], message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rule(rule_data(scope=scope))


@pytest.mark.parametrize(
    "target",
    [
        {"subscription": "urn:ngsi-ld:Subscription:pm25"},
        {"webhook": "https://hooks.example.org/stadspuls"},
        {"webhook": "http://10.0.0.5:8080/alerts", "headers": {"Authorization": "Bearer x"}},
        {"mqtt": "mqtt://broker.example.org:1883/gent/alerts/pm25"},
        {"mqtt": "mqtts://broker.example.org/alerts"},
    ],
)
def test_valid_notify_targets(target: dict[str, Any]) -> None:
    rule = parse_rule(rule_data(notify=[target]))
    assert rule.notify[0].model_dump(exclude_defaults=True) == target


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ({}, "exactly one of the keys subscription, webhook or mqtt"),
        ({"webhook": "https://a.org", "mqtt": "mqtt://b/c"}, "exactly one of the keys"),
        ({"subscription": "pm25"}, "a subscription id is a URI"),
        ({"webhook": "ftp://a.org/x"}, "an http:// or https:// URL with a host"),
        ({"webhook": "https:///path"}, "with a host"),
        ({"webhook": "https://a.org", "headers": {"Bad Name": "x"}}, "not a valid HTTP header"),
        ({"webhook": "https://a.org", "headers": {"X-A": "a\r\nX-B: b"}}, "line break"),
        ({"webhook": "https://a.org", "secret": "x"}, r"notify\.0\.secret: is not a known"),
        ({"mqtt": "tcp://broker/alerts"}, "mqtt://host:port/topic"),
        ({"mqtt": "mqtt://broker"}, "names no topic"),
        ({"mqtt": "mqtt://broker/alerts/#"}, "cannot hold wildcards"),
        ({"mqtt": "mqtt://broker/alerts/+/pm"}, "cannot hold wildcards"),
        ({"mqtt": "mqtt://broker:99999/alerts"}, "port"),
        ("https://a.org", "exactly one of the keys"),
    ],
)
def test_invalid_notify_targets(target: Any, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        parse_rule(rule_data(notify=[target]))


@pytest.mark.parametrize(
    ("data", "attributes"),
    [
        (rule_data("threshold"), ("pm25",)),
        (rule_data("window"), ("no2",)),
        (rule_data("rate"), ("pm25",)),
        (rule_data("congestion"), ("averageVehicleSpeed", "occupancy")),
        (rule_data("silence"), ()),
        (rule_data("silence", attribute="uptime", below=0.5), ("uptime",)),
    ],
)
def test_attribute_names_can_be_expanded(data: dict[str, Any], attributes: tuple[str, ...]) -> None:
    rule = parse_rule(data)
    assert rule.attributes() == attributes
    names = {name: f"https://example.org/{name}" for name in attributes}
    expanded = rule.with_attribute_names(names)
    assert expanded.attributes() == tuple(names.values())
    assert rule.attributes() == attributes  # the original is left as it was


def test_entity_type_names_can_be_expanded() -> None:
    rule = parse_rule(rule_data(scope={"area": SQUARE, "entity_type": "AirQualityObserved"}))
    iri = "https://smartdatamodels.org/dataModel.Environment/AirQualityObserved"
    expanded = rule.with_entity_type_names({"AirQualityObserved": iri})
    assert expanded.scope.entity_type == iri and expanded.scope.geometry is not None
    assert rule.with_entity_type_names({}) is rule


RULES_YAML = """
rules:
  - id: pm25-high
    name: PM2.5 above 25 µg/m³
    kind: threshold
    scope: {entity_type: AirQualityObserved}
    category: environment
    sub_category: airPollution
    severity: high
    attribute: pm25
    operator: above
    level: 25
    clear_level: 20
    min_duration: PT10M
  - id: jam
    name: Congestion on the ring road
    kind: congestion
    scope: {device_model: traffic-loop}
    speed_below: 20
    occupancy_above: 0.3
    notify:
      - mqtt: mqtt://localhost:1883/alerts/traffic
"""


def test_load_rules_yaml() -> None:
    rules = load_rules_yaml(RULES_YAML, tenant="gent")
    assert [(rule.id, rule.tenant, type(rule)) for rule in rules] == [
        ("pm25-high", "gent", ThresholdRule),
        ("jam", "gent", CongestionRule),
    ]
    assert isinstance(rules[0], ThresholdRule)
    assert rules[0].min_duration == timedelta(minutes=10)
    assert load_rules_yaml(dump_rules_yaml(rules), tenant="gent") == rules


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("- [unclosed", "not valid YAML"),
        ("rule: 1", "must hold a list of rules"),
        ("- 42", r"rule 0: a rule is a mapping of fields, not int"),
        (
            yaml.safe_dump([rule_data(), rule_data(id="second", level="x")]),
            r"rule 1 \(id 'second'\): level: Input should be a valid number",
        ),
        (yaml.safe_dump([rule_data(), rule_data()]), r"rule 1 \(id 'threshold-rule'\): id .* used"),
        (yaml.safe_dump([rule_data(tenant="antwerpen")]), "names tenant 'antwerpen', not 'gent'"),
        (yaml.safe_dump([rule_data(id=None)]), r"rule 0: id: Field required"),
    ],
)
def test_yaml_errors_name_the_rule(text: str, message: str) -> None:
    with pytest.raises(RuleError, match=message):
        load_rules_yaml(text, tenant="gent")


def test_yaml_reports_every_bad_rule() -> None:
    text = yaml.safe_dump(
        [rule_data(id="a", level="x"), rule_data(id="b"), rule_data(id="c", kind="x")]
    )
    with pytest.raises(RuleError) as raised:
        load_rules_yaml(text)
    assert [problem.split(":")[0] for problem in raised.value.problems] == [
        "rule 0 (id 'a')",
        "rule 2 (id 'c')",
    ]


@pytest.mark.parametrize("text", ["", "# nothing yet\n", "rules: []"])
def test_empty_yaml_holds_no_rules(text: str) -> None:
    assert load_rules_yaml(text) == []


def test_kinds_are_their_own_models() -> None:
    kinds = {
        kind: type(parse_rule(rule_data(kind)))
        for kind in ("threshold", "window", "rate", "congestion", "silence")
    }
    assert kinds == {
        "threshold": ThresholdRule,
        "window": WindowRule,
        "rate": RateRule,
        "congestion": CongestionRule,
        "silence": SilenceRule,
    }


def test_the_examples_in_the_docs_are_valid() -> None:
    text = (Path(__file__).parents[2] / "docs" / "alerts.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    rules = [
        rule
        for block in blocks
        if block.startswith(("rules:", "- id:"))
        for rule in load_rules_yaml(block, tenant="gent")
    ]
    assert {rule.kind for rule in rules} == {"threshold", "window", "rate", "congestion", "silence"}
    for block in blocks:
        if block.startswith("scope:"):
            Scope.model_validate(yaml.safe_load(block)["scope"])
