"""Alert rules: the pydantic models of the HTTP API and YAML boundary (docs/alerts.md).

A rule is one of five kinds, told apart by `kind`: `threshold`, `window`, `rate`, `congestion`
and `silence`. All share the fields of `RuleBase`; `Rule` is their discriminated union and
`parse_rule` / `load_rules_yaml` turn JSON or YAML into rules with readable errors.
Severity, category and subCategory are those of the Smart Data Models `Alert` entity
(dataModel.Alert, alert-schema.json and Alert/schema.json).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    model_validator,
)

from alerts.durations import Duration
from alerts.scope import Scope
from alerts.targets import NotifyTarget

Severity = Literal["informational", "low", "medium", "high", "critical"]
Category = Literal[
    "traffic", "naturalDisaster", "weather", "environment", "health", "security", "agriculture"
]
#: The subCategory enumeration of the Smart Data Models Alert schema.
SUB_CATEGORIES: frozenset[str] = frozenset(
    """trafficJam carAccident carWrongDirection carStopped pothole roadClosed roadWorks
    hazardOnRoad injuredBiker pedestrianOnRoad bikerOnRoad tramApproaching crowdRisk flood
    tsunami coastalEvent earthquake rainfall highTemperature lowTemperature lowHumidity
    highHumidity highAtmosphericPressure losAtmosphericPressure heatWave coldWave ice snow
    wind fog tornado tropicalCyclone hurricane snow/ice badSeaState thunderstorms fireRisk
    avalancheRisk floodRisk airPollution waterPollution pollenConcentration asthmaAttack
    bumpedPatient fallenPatient heartAttack suspiciousAction robbery assault civilDisorder
    buildingFire forestFire noxiousWeed snail insect rodent bacteria microbe fungus mite
    virus nematodes irrigation fertilisation""".split()  # noqa: SIM905
)


def _known_sub_category(value: str) -> str:
    if value not in SUB_CATEGORIES:
        near = sorted(name for name in SUB_CATEGORIES if name.lower() == value.lower())
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise ValueError(
            f"{value!r} is not a Smart Data Models Alert subCategory{hint};"
            " e.g. airPollution, trafficJam, roadWorks (docs/alerts.md lists them)"
        )
    return value


SubCategory = Annotated[str, AfterValidator(_known_sub_category)]
Operator = Literal["above", "below"]
Statistic = Literal["mean", "min", "max", "sum", "count"]
RuleKind = Literal["threshold", "window", "rate", "congestion", "silence"]
_Finite = Annotated[float, Field(allow_inf_nan=False)]


class RuleBase(BaseModel, ABC):
    """The fields every rule kind has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,100}$")
    tenant: str = ""
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    enabled: bool = True
    scope: Scope
    severity: Severity = "medium"
    category: Category
    sub_category: SubCategory
    notify: list[NotifyTarget] = Field(default_factory=list)

    @abstractmethod
    def attributes(self) -> tuple[str, ...]:
        """The attribute names the rule reads; empty when any attribute counts (silence)."""

    def with_attribute_names(self, names: Mapping[str, str]) -> Self:
        """A copy whose attribute names are replaced through `names` (e.g. short name → IRI)."""
        fields = {
            field: names.get(getattr(self, field), getattr(self, field))
            for field in _ATTRIBUTE_FIELDS
            if field in type(self).model_fields and getattr(self, field) is not None
        }
        return self.model_copy(update=fields)

    def with_entity_type_names(self, names: Mapping[str, str]) -> Self:
        """A copy whose scope entity_type is replaced through `names` (e.g. short name → IRI)."""
        entity_type = self.scope.entity_type
        if entity_type is None or entity_type not in names:
            return self
        scope = self.scope.model_copy(update={"entity_type": names[entity_type]})
        return self.model_copy(update={"scope": scope})


_ATTRIBUTE_FIELDS = ("attribute", "speed_attribute", "occupancy_attribute")


def _default_clear(data: Any, level: str, clear: str) -> Any:
    """Before validation: a missing clear level is the level itself (no hysteresis).

    Filled in here so that the rule's JSON shows it; the effective_* properties cover the
    case where the level was not a plain number (then validation fails on the level anyway).
    """
    if isinstance(data, dict) and data.get(clear) is None and _number_like(data.get(level)):
        return {**data, clear: data[level]}
    return data


def _number_like(value: Any) -> bool:
    # A level that is not a number gets its own error; copying it would report it twice.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return False
    try:
        float(value)
    except ValueError:
        return False
    return True


def _check_clear(operator: str, level: float, clear: float, what: str = "clear_level") -> None:
    if operator == "above" and clear > level:
        raise ValueError(f"{what} {clear:g} must be at or below level {level:g} for above")
    if operator == "below" and clear < level:
        raise ValueError(f"{what} {clear:g} must be at or above level {level:g} for below")


class _LevelRule(RuleBase):
    """A rule that compares one number with a level, with hysteresis and a minimum duration."""

    operator: Operator
    level: _Finite
    #: The alert resolves once the value is back at or beyond this level (default: level).
    clear_level: _Finite | None = None
    min_duration: Duration = timedelta(0)

    @model_validator(mode="before")
    @classmethod
    def _clear_defaults_to_level(cls, data: Any) -> Any:
        return _default_clear(data, "level", "clear_level")

    @model_validator(mode="after")
    def _clear_on_the_right_side(self) -> Self:
        _check_clear(self.operator, self.level, self.effective_clear_level)
        return self

    @property
    def effective_clear_level(self) -> float:
        """clear_level, or level when none is given."""
        return self.level if self.clear_level is None else self.clear_level


class ThresholdRule(_LevelRule):
    """Fires when a reading of `attribute` is above (or below) `level`."""

    kind: Literal["threshold"]
    attribute: str = Field(min_length=1)

    def attributes(self) -> tuple[str, ...]:
        """The attribute compared with the level."""
        return (self.attribute,)


class WindowRule(_LevelRule):
    """Fires when a statistic of `attribute` over the trailing `window` passes `level`."""

    kind: Literal["window"]
    attribute: str = Field(min_length=1)
    statistic: Statistic
    window: Duration

    @model_validator(mode="after")
    def _window_is_positive(self) -> Self:
        if self.window <= timedelta(0):
            raise ValueError("window must be longer than zero")
        return self

    def attributes(self) -> tuple[str, ...]:
        """The attribute whose readings fill the window."""
        return (self.attribute,)


class RateRule(_LevelRule):
    """Fires when `attribute` changes faster (or slower) than `level` units per `per`."""

    kind: Literal["rate"]
    attribute: str = Field(min_length=1)
    per: Duration = timedelta(hours=1)
    #: Compare the size of the change, rising or falling alike.
    absolute: bool = False

    @model_validator(mode="after")
    def _rate_is_sane(self) -> Self:
        if self.per <= timedelta(0):
            raise ValueError("per must be longer than zero")
        if self.absolute and min(self.level, self.effective_clear_level) < 0:
            raise ValueError("with absolute: true the rate is a size: level and clear_level >= 0")
        return self

    def attributes(self) -> tuple[str, ...]:
        """The attribute whose change is measured."""
        return (self.attribute,)


class CongestionRule(RuleBase):
    """Fires when the latest speed is below `speed_below` and occupancy above `occupancy_above`."""

    kind: Literal["congestion"]
    category: Category = "traffic"
    sub_category: SubCategory = "trafficJam"
    speed_attribute: str = Field(default="averageVehicleSpeed", min_length=1)
    occupancy_attribute: str = Field(default="occupancy", min_length=1)
    speed_below: _Finite
    occupancy_above: _Finite
    speed_clear: _Finite | None = None
    occupancy_clear: _Finite | None = None
    min_duration: Duration = timedelta(0)

    @model_validator(mode="before")
    @classmethod
    def _clear_defaults(cls, data: Any) -> Any:
        data = _default_clear(data, "speed_below", "speed_clear")
        return _default_clear(data, "occupancy_above", "occupancy_clear")

    @model_validator(mode="after")
    def _clear_on_the_right_side(self) -> Self:
        _check_clear("below", self.speed_below, self.effective_speed_clear, "speed_clear")
        _check_clear(
            "above", self.occupancy_above, self.effective_occupancy_clear, "occupancy_clear"
        )
        if self.speed_attribute == self.occupancy_attribute:
            raise ValueError("speed_attribute and occupancy_attribute must differ")
        return self

    @property
    def effective_speed_clear(self) -> float:
        """speed_clear, or speed_below when none is given."""
        return self.speed_below if self.speed_clear is None else self.speed_clear

    @property
    def effective_occupancy_clear(self) -> float:
        """occupancy_clear, or occupancy_above when none is given."""
        return self.occupancy_above if self.occupancy_clear is None else self.occupancy_clear

    def attributes(self) -> tuple[str, ...]:
        """The speed and the occupancy attribute."""
        return (self.speed_attribute, self.occupancy_attribute)


class SilenceRule(RuleBase):
    """Fires when an entity sends no (good) reading for longer than `silent_for`."""

    kind: Literal["silence"]
    silent_for: Duration
    #: Only readings of this attribute count as signs of life (default: any attribute).
    attribute: str | None = Field(default=None, min_length=1)
    #: With `attribute`: a reading below this value does not count (Telraam uptime < 0.5).
    below: _Finite | None = None

    @model_validator(mode="after")
    def _silence_is_sane(self) -> Self:
        if self.silent_for <= timedelta(0):
            raise ValueError("silent_for must be longer than zero")
        if self.below is not None and self.attribute is None:
            raise ValueError("below needs attribute: the attribute whose value is compared")
        return self

    def attributes(self) -> tuple[str, ...]:
        """The attribute that counts as a sign of life, or () for any attribute."""
        return () if self.attribute is None else (self.attribute,)


#: Any rule; `kind` decides which model validates it.
Rule = Annotated[
    ThresholdRule | WindowRule | RateRule | CongestionRule | SilenceRule,
    Field(discriminator="kind"),
]
RULE_ADAPTER: TypeAdapter[Rule] = TypeAdapter(Rule)
RULE_LIST_ADAPTER: TypeAdapter[list[Rule]] = TypeAdapter(list[Rule])


class RuleError(ValueError):
    """Rules that do not validate; `problems` lists one readable line per problem."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


def validation_problems(error: ValidationError) -> list[str]:
    """Readable lines for a pydantic error on a rule: 'scope.area: area must be ...'."""
    problems = []
    for item in error.errors(include_url=False):
        # The first location step of a discriminated union is the kind tag: not a field.
        location = [str(part) for part in item["loc"]]
        if location and location[0] in _KINDS:
            location = location[1:]
        if location[:1] == ["notify"] and len(location) > 2 and location[2] in _TARGETS:
            del location[2]
        message = str(item["msg"]).removeprefix("Value error, ")
        if item["type"] == "union_tag_not_found":
            message = f"kind is missing: it is one of {', '.join(_KINDS)}"
        elif item["type"] == "union_tag_invalid":
            message = f"kind {item['input'].get('kind')!r} is not one of {', '.join(_KINDS)}"
        elif item["type"] == "extra_forbidden":
            message = "is not a known field here (see docs/alerts.md)"
        problems.append(f"{'.'.join(location)}: {message}" if location else message)
    return problems


_KINDS: tuple[str, ...] = ("threshold", "window", "rate", "congestion", "silence")
_TARGETS = ("subscription", "webhook", "mqtt")


def parse_rule(data: Any, tenant: str | None = None) -> Rule:
    """A rule from JSON-like data; with `tenant`, the rule belongs to it. RuleError if invalid."""
    if not isinstance(data, dict):
        raise RuleError([f"a rule is a mapping of fields, not {type(data).__name__}"])
    if tenant is not None:
        stated = data.get("tenant")
        if stated not in (None, tenant):
            raise RuleError([f"tenant: the rule names tenant {stated!r}, not {tenant!r}"])
        data = {**data, "tenant": tenant}
    try:
        return RULE_ADAPTER.validate_python(data)
    except ValidationError as error:
        raise RuleError(validation_problems(error)) from None


def load_rules_yaml(text: str, tenant: str = "") -> list[Rule]:
    """The rules of a YAML document (a list, or a mapping with `rules:`); RuleError if any is bad.

    Every bad rule is reported, each as 'rule <index> (id <id>): <field>: <problem>', with the
    index counted from 0 in the order of the file.
    """
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RuleError([f"not valid YAML: {error}"]) from None
    if isinstance(document, dict) and set(document) == {"rules"}:
        document = document["rules"]
    if document is None:
        return []
    if not isinstance(document, list):
        raise RuleError(["the file must hold a list of rules, or a mapping with a rules: list"])
    rules: list[Rule] = []
    problems: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(document):
        rule_id = item.get("id") if isinstance(item, dict) else None
        where = f"rule {index}" + (f" (id {rule_id!r})" if isinstance(rule_id, str) else "")
        try:
            rule = parse_rule(item, tenant)
        except RuleError as error:
            problems.extend(f"{where}: {problem}" for problem in error.problems)
            continue
        if rule.id in seen:
            problems.append(f"{where}: id {rule.id!r} is used by an earlier rule")
        seen.add(rule.id)
        rules.append(rule)
    if problems:
        raise RuleError(problems)
    return rules


def dump_rules_yaml(rules: list[Rule]) -> str:
    """The YAML text of rules, in the form load_rules_yaml reads (durations as ISO 8601)."""
    data = [rule_document(rule) for rule in rules]
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)


def rule_document(rule: Rule) -> dict[str, Any]:
    """The JSON form of a rule (API bodies, the stored jsonb): id and kind first, no nulls."""
    data = rule.model_dump(mode="json", exclude_none=True)
    return {"id": data.pop("id"), "kind": data.pop("kind"), **data}
