"""What the third-party client test needs around it: the client's own virtual environment
(Python >= 3.12, made once and reused) and `stadspuls api` running as a real process."""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from stadspuls.embedded import free_port

REPO = Path(__file__).resolve().parents[3]
#: The client under test, pinned: a new release is a deliberate change of this test.
CLIENT_PACKAGE = "ngsildclient==0.5.2"
#: Git-ignored (`.cache/`); one virtual environment for every test run on this machine.
CLIENT_VENV = REPO / ".cache" / "ngsild-client-venv"
MINIMUM_PYTHON = (3, 12)
PIP_TIMEOUT = 300.0


class ClientUnavailable(Exception):
    """The client's environment cannot be made here (no Python >= 3.12, no network, ...)."""


def _version_of(executable: str) -> tuple[int, int] | None:
    """The (major, minor) version of a Python executable; None when it does not run."""
    try:
        result = subprocess.run(
            [executable, "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = result.stdout.split()
    if result.returncode != 0 or len(parts) != 2:
        return None  # e.g. a pyenv shim of a version that is installed but not selected
    return int(parts[0]), int(parts[1])


def _pyenv_root() -> Path | None:
    if root := os.environ.get("PYENV_ROOT"):
        return Path(root)
    if pyenv := shutil.which("pyenv"):
        try:
            found = subprocess.run(
                [pyenv, "root"], capture_output=True, text=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            found = None
        if found is not None and found.returncode == 0 and found.stdout.strip():
            return Path(found.stdout.strip())
    default = Path.home() / ".pyenv"
    return default if default.is_dir() else None


def _candidates() -> list[str]:
    """Interpreters that may be Python >= 3.12: pyenv's (3.12 first), then those on PATH."""
    found: list[tuple[tuple[int, int, int], str]] = []
    if root := _pyenv_root():
        for directory in (root / "versions").glob("3.*"):
            match = re.fullmatch(r"3\.(\d+)\.(\d+)", directory.name)
            executable = directory / "bin" / "python3"
            if match and int(match[1]) >= MINIMUM_PYTHON[1] and executable.exists():
                minor, patch = int(match[1]), int(match[2])
                # The issue names 3.12; a newer one serves as well. Newest patch first.
                found.append(((minor != MINIMUM_PYTHON[1], minor, -patch), str(executable)))
    names = [str(executable) for _, executable in sorted(found)]
    for minor in range(MINIMUM_PYTHON[1], MINIMUM_PYTHON[1] + 4):
        if on_path := shutil.which(f"python3.{minor}"):
            names.append(on_path)
    return list(dict.fromkeys(names))


def find_interpreter() -> tuple[str, tuple[int, int]]:
    """A Python >= 3.12 on this machine; ClientUnavailable saying where we looked."""
    candidates = _candidates()
    for executable in candidates:
        version = _version_of(executable)
        if version is not None and version >= MINIMUM_PYTHON:
            return executable, version
    raise ClientUnavailable(
        f"{CLIENT_PACKAGE} needs Python >= 3.12 and none runs here "
        f"(tried {candidates or 'pyenv versions and python3.12+ on PATH'})"
    )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock file: two test runs never build the environment at once."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run(command: list[str], timeout: float, what: str) -> None:
    try:
        result = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        raise ClientUnavailable(f"{what} took over {timeout:.0f} s") from None
    if result.returncode != 0:
        lines = (result.stderr or result.stdout).strip().splitlines()
        tail = [line for line in lines if line.startswith("ERROR")][-3:] or lines[-3:]
        raise ClientUnavailable(f"{what} failed (exit {result.returncode}): {' | '.join(tail)}")


def client_python() -> Path:
    """The python of the client's environment, made on first use and then reused."""
    python = CLIENT_VENV / "bin" / "python"
    marker = CLIENT_VENV / "stadspuls-client.json"
    with _locked(CLIENT_VENV.parent / "ngsild-client-venv.lock"):
        installed = json.loads(marker.read_text()) if marker.exists() else {}
        if installed.get("package") == CLIENT_PACKAGE and _version_of(str(python)) is not None:
            return python
        interpreter, version = find_interpreter()
        shutil.rmtree(CLIENT_VENV, ignore_errors=True)
        try:
            _run([interpreter, "-m", "venv", str(CLIENT_VENV)], 120, "creating the venv")
            install = [str(python), "-m", "pip", "install", "--quiet"]
            install += ["--disable-pip-version-check", CLIENT_PACKAGE]
            _run(install, PIP_TIMEOUT, f"pip install {CLIENT_PACKAGE} (no network?)")
            _run([str(python), "-c", "import ngsildclient"], 60, "importing ngsildclient")
        except ClientUnavailable:
            shutil.rmtree(CLIENT_VENV, ignore_errors=True)
            raise
        facts = {"package": CLIENT_PACKAGE, "interpreter": interpreter, "version": version}
        marker.write_text(json.dumps(facts))
    return python


def log_tail(path: Path, lines: int = 30) -> str:
    """The end of a log file, for assertion messages."""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@contextmanager
def running_api(database_url: str, log_path: Path, *, auth_enabled: bool) -> Iterator[str]:
    """`stadspuls api` as a child process on a free loopback port; its base URL.

    The database must be migrated already. Stopped afterwards: SIGTERM, then SIGKILL.
    """
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("STADSPULS_")}
    env.update(
        STADSPULS_DATABASE_URL=database_url,
        STADSPULS_API_HOST="127.0.0.1",
        STADSPULS_API_PORT=str(port),
        STADSPULS_AUTH_ENABLED=str(auth_enabled).lower(),
        STADSPULS_LOG_LEVEL="INFO",
    )
    base_url = f"http://127.0.0.1:{port}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "stadspuls", "api", "--no-migrate"],
            env=env,
            cwd=REPO,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_answering(process, base_url, log_path, timeout=30.0)
            yield base_url
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_until_answering(
    process: subprocess.Popen[bytes], base_url: str, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(
                f"stadspuls api exited with {process.returncode}:\n{log_tail(log_path)}"
            )
        try:
            if httpx.get(f"{base_url}/openapi.json", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(
        f"stadspuls api did not answer within {timeout:.0f} s:\n{log_tail(log_path)}"
    )


def stadspuls_command(database_url: str, *args: str) -> str:
    """Run a `stadspuls` command against the database; its stdout (it must succeed)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("STADSPULS_")}
    env.update(STADSPULS_DATABASE_URL=database_url, COLUMNS="200")
    result = subprocess.run(
        [sys.executable, "-m", "stadspuls", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"stadspuls {' '.join(args)}: {result.stderr}"
    return result.stdout
