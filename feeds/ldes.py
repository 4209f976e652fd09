"""Linked Data Event Streams (LDES 1.0, TREE hypermedia): streams, time fragments, graphs.

Pure: the router (feeds/routes_ldes.py) reads the members from storage and asks this module
for the documents. Layout of one stream (docs/ldes.md):

- `{base}/{stream}`: the `ldes:EventStream` (timestampPath, versionOfPath, tree:view);
- `{base}/{stream}/view`: the view's root node: a `tree:GreaterThanOrEqualToRelation` and a
  `tree:LessThanRelation` (tree:path the timestamp path, tree:value an xsd:dateTime) to the
  first page of every time window that holds members and is not past the retention period,
  and the view description with its retention policy (`ldes:DurationAgoPolicy`);
- `{base}/{stream}/fragments/{window}[?page=N]`: the members (`tree:member`) of one fixed
  window [start, start + size), ordered by timestamp, at most `page_size` a page; a page that
  is not the last links to the next one with a relation on the first timestamp it holds.

Every stream is append-only (LDES 1.0): a member, once published, never changes and leaves
only through the retention policy. The roadworks stream has one member per version of a
CityWork, and an `as:Delete` member (`ldes:versionDeleteObject`) when one is deleted.

A window is closed, and its pages immutable, once its end lies `settle_seconds` in the past
(readings may arrive late until then); the latest windows are open and cached briefly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from rdflib import BNode, Graph, Literal, Namespace, URIRef
from rdflib.namespace import DCTERMS, PROV, RDF, XSD

from feeds.ldes_members import (
    ACTIVITY_STREAMS,
    GEO,
    IMPL,
    LOCN,
    M8G,
    MOBILITEIT,
    OM,
    QUDT,
    SOSA,
    TIME,
    TRANSPORTATION,
    VKM,
    timestamp_literal,
)

TREE = Namespace("https://w3id.org/tree#")
LDES = Namespace("https://w3id.org/ldes#")
WINDOW_FORMAT = "%Y%m%dT%H%M%SZ"
IMMUTABLE = "public, max-age={max_age}, immutable"


@dataclass(frozen=True, slots=True)
class LdesSettings:
    """The LDES settings (`STADSPULS_LDES_*`; docs/ldes.md), with their defaults."""

    #: Length of one time window (fragment), in seconds.
    fragment_seconds: int = 3600
    #: Members on one page of a window; a fuller window continues on `?page=2`, ...
    page_size: int = 250
    #: Retention: windows that ended longer ago than this are no longer served (410).
    retention_days: int = 30
    #: How long after its end a window still takes late readings (and is not immutable).
    settle_seconds: int = 300
    #: Cache lifetime of the open pages, the view and the stream description.
    open_max_age: int = 5
    #: Cache lifetime of closed (immutable) pages.
    closed_max_age: int = 31_536_000
    #: Public base URL of the API (behind a proxy); default: the request's own.
    base_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> LdesSettings:
        """The LDES settings of the app's Settings (fields `ldes_*`, defaults where absent)."""
        defaults = cls()
        values = {
            name: getattr(settings, f"ldes_{name}", getattr(defaults, name))
            for name in cls.__dataclass_fields__
        }
        return cls(**values)

    @property
    def fragment(self) -> timedelta:
        """The window length."""
        return timedelta(seconds=self.fragment_seconds)

    @property
    def retention(self) -> timedelta:
        """The retention period."""
        return timedelta(days=self.retention_days)


@dataclass(frozen=True, slots=True)
class Stream:
    """One kind of event stream."""

    name: str
    title: str
    description: str
    #: The member property that carries the member's timestamp.
    timestamp_path: URIRef
    #: Whether members come from the observations table (else: CityWork versions).
    observations: bool

    @property
    def deletes(self) -> bool:
        """Whether the stream has deletion members (`as:Delete` versions: the roadworks)."""
        return not self.observations


STREAMS = {
    stream.name: stream
    for stream in (
        Stream(
            "traffic",
            "Verkeersmetingen",
            "Traffic counts (Verkeerstelling) and speeds (Verkeerssnelheidsmeting) per "
            "measuring point, in OSLO Verkeersmetingen terms.",
            PROV.generatedAtTime,
            True,
        ),
        Stream(
            "air-quality",
            "Air quality observations",
            "Air-quality and weather observations as SOSA/SSN observations.",
            SOSA.resultTime,
            True,
        ),
        Stream(
            "roadworks",
            "Roadworks",
            "Every version of the roadworks (CityWork entities) as OSLO mobility "
            "hindrances: a new member whenever a roadwork is created or changes, an "
            "as:Delete member when it is deleted.",
            PROV.generatedAtTime,
            False,
        ),
    )
}


@dataclass(frozen=True, slots=True)
class StreamUrls:
    """The IRIs (URLs) of one stream's documents."""

    #: `{public base}/ldes` or `{public base}/ldes/tenants/{tenant}`, without a final slash.
    base: str
    stream: str

    @property
    def event_stream(self) -> URIRef:
        """The ldes:EventStream."""
        return URIRef(f"{self.base}/{self.stream}")

    @property
    def view(self) -> URIRef:
        """The root node of the time-based view."""
        return URIRef(f"{self.base}/{self.stream}/view")

    def fragment(self, start: datetime, page: int = 1) -> URIRef:
        """The page `page` of the window starting at `start`."""
        url = f"{self.base}/{self.stream}/fragments/{window_token(start)}"
        return URIRef(url if page == 1 else f"{url}?page={page}")


def window_token(start: datetime) -> str:
    """The path segment of a window: its start in ISO 8601 basic format, UTC."""
    return start.astimezone(UTC).strftime(WINDOW_FORMAT)


def parse_window(token: str, settings: LdesSettings) -> datetime | None:
    """The start of the window a path segment names; None when it names no window start."""
    try:
        start = datetime.strptime(token, WINDOW_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return start if window_start(start, settings) == start else None


def window_start(moment: datetime, settings: LdesSettings) -> datetime:
    """The start of the window holding `moment` (windows are aligned on the Unix epoch)."""
    seconds = int(moment.timestamp()) // settings.fragment_seconds * settings.fragment_seconds
    return datetime.fromtimestamp(seconds, UTC)


def is_closed(start: datetime, now: datetime, settings: LdesSettings) -> bool:
    """Whether a window takes no more members: its end is past by the settle margin."""
    return start + settings.fragment + timedelta(seconds=settings.settle_seconds) <= now


def is_expired(start: datetime, now: datetime, settings: LdesSettings) -> bool:
    """Whether a window ended longer ago than the retention period (it is not served)."""
    return start + settings.fragment <= now - settings.retention


def first_retained(now: datetime, settings: LdesSettings) -> datetime:
    """The start of the oldest window the retention policy still serves."""
    return window_start(now - settings.retention, settings)


def cache_control(closed: bool, settings: LdesSettings) -> str:
    """Cache-Control of a page: immutable for a closed window, short-lived otherwise."""
    if closed:
        return IMMUTABLE.format(max_age=settings.closed_max_age)
    return f"public, max-age={settings.open_max_age}"


def _describe_stream(graph: Graph, stream: Stream, urls: StreamUrls) -> None:
    node = urls.event_stream
    graph.add((node, RDF.type, LDES.EventStream))
    graph.add((node, LDES.timestampPath, stream.timestamp_path))
    graph.add((node, LDES.versionOfPath, DCTERMS.isVersionOf))
    if stream.deletes:
        # LDES vocabulary: a member whose rdf:type (the default versionDeletePath) is
        # as:Delete marks its versioned object as deleted.
        graph.add((node, LDES.versionDeleteObject, ACTIVITY_STREAMS.Delete))
    graph.add((node, TREE.view, urls.view))
    graph.add((node, DCTERMS.title, Literal(stream.title)))
    graph.add((node, DCTERMS.description, Literal(stream.description)))


def _describe_view(graph: Graph, urls: StreamUrls, settings: LdesSettings) -> None:
    view = urls.view
    description = URIRef(f"{view}#description")
    policy = URIRef(f"{view}#retention")
    graph.add((view, RDF.type, TREE.Node))
    graph.add((view, TREE.viewDescription, description))
    graph.add((description, RDF.type, TREE.ViewDescription))
    graph.add((description, LDES.retentionPolicy, policy))
    # Older LDES clients read the policy on the view node itself.
    graph.add((view, LDES.retentionPolicy, policy))
    graph.add((policy, RDF.type, LDES.DurationAgoPolicy))
    graph.add((policy, TREE.value, Literal(f"P{settings.retention_days}D", datatype=XSD.duration)))


def _relation(
    graph: Graph, source: URIRef, kind: URIRef, path: URIRef, value: datetime, target: URIRef
) -> None:
    relation = BNode()
    graph.add((source, TREE.relation, relation))
    graph.add((relation, RDF.type, kind))
    graph.add((relation, TREE.path, path))
    graph.add((relation, TREE.value, timestamp_literal(value)))
    graph.add((relation, TREE.node, target))


def event_stream_graph(stream: Stream, urls: StreamUrls, settings: LdesSettings) -> Graph:
    """The stream's own document: the EventStream and its view's description."""
    graph = new_graph()
    _describe_stream(graph, stream, urls)
    _describe_view(graph, urls, settings)
    return graph


def view_graph(
    stream: Stream, urls: StreamUrls, settings: LdesSettings, windows: list[datetime]
) -> Graph:
    """The view's root node, with relations to the first page of every window listed."""
    graph = event_stream_graph(stream, urls, settings)
    for start in windows:
        target = urls.fragment(start)
        path = stream.timestamp_path
        _relation(graph, urls.view, TREE.GreaterThanOrEqualToRelation, path, start, target)
        end = start + settings.fragment
        _relation(graph, urls.view, TREE.LessThanRelation, path, end, target)
    return graph


def fragment_graph(
    stream: Stream,
    urls: StreamUrls,
    settings: LdesSettings,
    start: datetime,
    page: int,
    next_page_from: datetime | None,
) -> Graph:
    """One page of a window without its members (add them with `add_member`); with a
    relation to the next page when `next_page_from` (its first timestamp) is given."""
    graph = new_graph()
    _describe_stream(graph, stream, urls)
    node = urls.fragment(start, page)
    graph.add((node, RDF.type, TREE.Node))
    graph.add((node, DCTERMS.isPartOf, urls.event_stream))
    if next_page_from is not None:
        target = urls.fragment(start, page + 1)
        path = stream.timestamp_path
        _relation(graph, node, TREE.GreaterThanOrEqualToRelation, path, next_page_from, target)
        end = start + settings.fragment
        _relation(graph, node, TREE.LessThanRelation, path, end, target)
    return graph


def add_member(graph: Graph, urls: StreamUrls, member: URIRef) -> None:
    """List `member` as a member of the stream."""
    graph.add((urls.event_stream, TREE.member, member))


def stream_index_graph(urls: list[StreamUrls]) -> Graph:
    """The streams of a tenant (what `{base}` answers)."""
    graph = new_graph()
    for stream_urls in urls:
        stream = STREAMS[stream_urls.stream]
        _describe_stream(graph, stream, stream_urls)
    return graph


PREFIXES = {
    "tree": TREE,
    "ldes": LDES,
    "dcterms": DCTERMS,
    "prov": PROV,
    "xsd": XSD,
    "sosa": SOSA,
    "qudt": QUDT,
    "time": TIME,
    "geo": GEO,
    "locn": LOCN,
    "m8g": M8G,
    "mobiliteit": MOBILITEIT,
    "vkm": VKM,
    "impl": IMPL,
    "om": OM,
    "sdm": TRANSPORTATION,
    "as": ACTIVITY_STREAMS,
}


def new_graph() -> Graph:
    """An empty graph with the stream's prefixes bound (for Turtle)."""
    graph = Graph()
    for prefix, namespace in PREFIXES.items():
        graph.bind(prefix, namespace, override=True)
    return graph
