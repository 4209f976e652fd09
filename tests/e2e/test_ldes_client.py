"""The TREE community's LDES client (`ldes-client` on npm, rdf-connect/ldes-client) replicates
the traffic stream from a real `stadspuls api` process over a socket.

The client is installed once into `.cache/ldes-client` (git-ignored) with npm and run with
`npx`; the test skips, saying why, only when npm cannot install it. The database holds
readings written by the real ingest path. The first replication must give every member
exactly once, in timestamp order (`--ordered ascending`); after new readings arrive, a
follow-up replication from the client's saved state (`--save`) gives only the new members.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rdflib import Graph, URIRef
from rdflib.namespace import PROV

from feeds.ldes import LdesSettings, window_start
from feeds.ldes_members import ObservationRecord, series_iri, version_iri
from stadspuls.settings import Settings
from stadspuls.wiring import prepare_database
from storage.database import drop_database
from storage.records import ObservationRow
from tests.e2e.third_party.harness import REPO, log_tail, running_api
from tests.integration.test_ldes import ingest, stream_rows
from tests.support.fixtures import scratch_database_url

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

#: The client under test, pinned: a new release is a deliberate change of this test.
CLIENT_PACKAGE = "ldes-client@0.3.0"
CLIENT_DIRECTORY = REPO / ".cache" / "ldes-client"
NPM_TIMEOUT = 300
REPLICATION_TIMEOUT = 180
NOW = datetime.now(UTC)
HOUR = window_start(NOW, LdesSettings())
#: Six closed hours of readings, then two more hours that arrive after the first replication.
FIRST = [HOUR - timedelta(hours=30 - hour, minutes=-7) for hour in range(6)]
LATER = [HOUR - timedelta(hours=20 - hour, minutes=-7) for hour in range(2)]


class ClientUnavailable(Exception):
    """npm could not install the client here."""


def install_client() -> Path:
    """The directory holding the installed client (installed on first use, then reused)."""
    marker = CLIENT_DIRECTORY / "stadspuls-client.json"
    CLIENT_DIRECTORY.mkdir(parents=True, exist_ok=True)
    with (CLIENT_DIRECTORY.parent / "ldes-client.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and json.loads(marker.read_text()).get("package") == CLIENT_PACKAGE:
            return CLIENT_DIRECTORY
        if shutil.which("npm") is None or shutil.which("npx") is None:
            raise ClientUnavailable("npm/npx are not installed on this machine")
        command = ["npm", "install", "--no-audit", "--no-fund", "--prefix"]
        command += [str(CLIENT_DIRECTORY), CLIENT_PACKAGE]
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=NPM_TIMEOUT, check=False
            )
        except subprocess.TimeoutExpired:
            raise ClientUnavailable(f"npm install took over {NPM_TIMEOUT} s") from None
        if result.returncode != 0:
            tail = " | ".join(result.stderr.strip().splitlines()[-3:])
            raise ClientUnavailable(f"npm install {CLIENT_PACKAGE} failed: {tail}")
        marker.write_text(json.dumps({"package": CLIENT_PACKAGE}))
    return CLIENT_DIRECTORY


@pytest.fixture(scope="module")
def client_directory() -> Path:
    """Where the client is installed; the tests skip, with the reason, when it cannot be."""
    try:
        return install_client()
    except ClientUnavailable as reason:
        pytest.skip(f"the TREE ldes-client cannot be installed: {reason}")


@pytest.fixture
def database() -> Iterator[str]:
    """A migrated database of this test's own; dropped afterwards."""
    url = scratch_database_url("stadspuls_e2e_ldes")
    prepare_database(Settings(database_url=url, metrics_port=0))
    yield url
    drop_database(url)


def replicate(directory: Path, url: str, state: Path, log: Path) -> list[tuple[str, datetime]]:
    """Run the client once (no --follow: it stops when the stream is replicated); the
    members it printed, in order, as (IRI, timestamp)."""
    command = ["npx", "--no", "ldes-client", url, "--ordered", "ascending"]
    # One request at a time: with its default of 10 concurrent fetches, ldes-client 0.3.0
    # was once seen (on a loaded machine) to emit a member of a later window first, although
    # every relation carries its time bounds.
    command += ["--save", str(state), "--retry-count", "2", "--concurrent", "1"]
    result = subprocess.run(
        command,
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=REPLICATION_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, f"{result.stderr[-3000:]}\n{log_tail(log)}"
    assert "Error" not in result.stderr, result.stderr[-3000:]
    found = []
    # The client prints each member's quads, members separated by a blank line; the stream's
    # members are all in the default graph, so each block is N-Triples.
    for block in result.stdout.split("\n\n"):
        if not block.strip():
            continue
        graph = Graph()
        graph.parse(data=block, format="nt")
        [(member, moment)] = list(graph.subject_objects(PROV.generatedAtTime))
        found.append((str(member), moment.toPython()))
    return found


def member_iris(rows: list[ObservationRow]) -> set[str]:
    """The member IRIs the traffic stream gives these rows."""
    iris = set()
    for row in stream_rows(rows, "traffic"):
        attribute = row.attribute.rsplit("/", 1)[-1]
        record = ObservationRecord(
            row.entity_id, "", attribute, row.attribute, row.dataset_id, row.observed_at,
            row.value_num or 0.0, row.unit_code,
        )  # fmt: skip
        iris.add(str(version_iri(series_iri(record), row.observed_at)))
    return iris


def test_the_tree_ldes_client_replicates_the_stream_then_only_what_is_new(
    client_directory, database, tmp_path
):
    first_rows = ingest(database, "", FIRST)
    expected = member_iris(first_rows)
    assert len(expected) >= 100, "several windows of members"
    state = tmp_path / "client-state"
    log = tmp_path / "api.log"
    with running_api(database, log, auth_enabled=False) as base_url:
        stream = f"{base_url}/ldes/traffic"
        first = replicate(client_directory, stream, state, log)
        iris = [iri for iri, _ in first]
        assert len(iris) == len(set(iris)), "a member arrived twice"
        assert set(iris) == expected
        times = [moment for _, moment in first]
        assert times == sorted(times), "members out of timestamp order"

        new_rows = ingest(database, "", LATER)
        follow_up = replicate(client_directory, stream, state, log)
        new_iris = [iri for iri, _ in follow_up]
        assert len(new_iris) == len(set(new_iris))
        assert set(new_iris) == member_iris(new_rows) != set()
        assert not set(new_iris) & expected
        new_times = [moment for _, moment in follow_up]
        assert new_times == sorted(new_times)
        assert URIRef(iris[0])  # IRIs, not blank nodes
