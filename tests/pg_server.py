"""A real PostgreSQL for the tests: one server per session, a fresh database per test.

``pg_server`` (session) runs ``initdb`` into a temporary folder and starts ``postgres`` on a
free loopback port, as the ``postgres`` OS user when the tests run as root (PostgreSQL refuses
to run as root); durability is off, since nothing outlives the session. A test asks for
``pg_url`` (a database already migrated to the current schema, copied from a template in
tens of milliseconds) or ``pg_empty_url`` (an empty database), each dropped after the test.
``catalog_url`` runs a test once on SQLite and once on PostgreSQL.

The server is never optional: if it cannot start, every test that needs it fails with the
reason (``RAGLOOP_TEST_PG_BIN`` names another folder of PostgreSQL programs).
"""

from __future__ import annotations

import atexit
import itertools
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from ragloop.core.storage.catalog import Catalog

PG_VERSION = 15
TEMPLATE = "ragloop_template"
START_TIMEOUT_S = 60.0
# Read at collection: the suite's autouse fixture clears RAGLOOP_* variables before each test,
# and the server starts inside the first test that needs it.
BIN_ENV = os.environ.get("RAGLOOP_TEST_PG_BIN")


class PostgresUnavailable(RuntimeError):
    """The test server could not be started (the message says why)."""


def find_bindir() -> Path:
    """The folder with ``initdb`` and ``postgres``: ``RAGLOOP_TEST_PG_BIN``, else Debian's
    PostgreSQL 15, else the newest Debian PostgreSQL, else ``pg_config --bindir``."""
    candidates = [Path(BIN_ENV)] if BIN_ENV else []
    if not BIN_ENV:
        candidates += _default_bindirs()
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "postgres").is_file():
            return folder
    raise PostgresUnavailable(
        "PostgreSQL programs not found (looked in "
        + ", ".join(str(c) for c in candidates)
        + "); install PostgreSQL 15 (Debian: apt-get install postgresql) or set "
        "RAGLOOP_TEST_PG_BIN to the folder holding initdb and postgres"
    )


def _default_bindirs() -> list[Path]:
    candidates = [Path(f"/usr/lib/postgresql/{PG_VERSION}/bin")]
    others = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates += others
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(Path(out.stdout.strip()))
    return candidates


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust authentication, user ``postgres``)."""

    def __init__(self) -> None:
        self.bindir = find_bindir()
        self.root = Path(tempfile.mkdtemp(prefix="ragloop-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "postgres.log"
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None
        self._counter = itertools.count()
        self._template_ready = False
        self._user: str | None = None
        self._gid: int | None = None
        if os.geteuid() == 0:  # PostgreSQL will not run as root
            try:
                entry = pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable(
                    "running as root and there is no 'postgres' OS user to run the server as"
                ) from None
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
            self._user = "postgres"
            self._gid = entry.pw_gid
        os.chmod(self.root, 0o700)

    def _run(self, args: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            user=self._user,
            group=self._gid,
            extra_groups=[] if self._user else None,
            capture_output=True,
            text=True,
            cwd=self.root,
            timeout=120,
        )

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        init = self._run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C.UTF-8",
                "--no-sync",
            ]
        )
        if init.returncode != 0:
            raise PostgresUnavailable(f"initdb failed: {init.stderr.strip()[-2000:]}")
        last = ""
        for _attempt in range(3):  # the free port may be taken between choosing and binding
            self.port = _free_port()
            last = self._start_once()
            if not last:
                atexit.register(self.stop)
                return
        raise PostgresUnavailable(f"postgres did not start: {last}")

    def _start_once(self) -> str:
        """Start postgres; '' when it accepts connections, else why not."""
        log = open(self.log, "ab")  # noqa: SIM115 - the server writes it for its whole life
        self.process = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "unix_socket_directories=",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
                "-c",
                "max_connections=200",
                "-c",
                "shared_buffers=64MB",
            ],
            user=self._user,
            group=self._gid,
            extra_groups=[] if self._user else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=self.root,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return f"exited with {self.process.returncode}: {self._log_tail()}"
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return ""
            except psycopg.OperationalError:
                time.sleep(0.1)
        self._terminate()
        return f"not accepting connections after {START_TIMEOUT_S:.0f} s: {self._log_tail()}"

    def _log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace").strip()[-2000:]
        except OSError:
            return "(no log)"

    def _terminate(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def stop(self) -> None:
        """Stop the server and delete its files."""
        self._terminate()
        shutil.rmtree(self.root, ignore_errors=True)

    # ---- databases ------------------------------------------------------------------------

    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str) -> str:
        """The SQLAlchemy URL of a database on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, database: str = "postgres") -> None:
        """Run one statement outside a transaction (CREATE/DROP DATABASE need that)."""
        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_database(self, template: str | None = None) -> str:
        """A new database, empty or a copy of ``template``; returns its name."""
        name = f"t{os.getpid()}_{next(self._counter)}"
        source = f" TEMPLATE {template}" if template else " TEMPLATE template0"
        self.execute(f"CREATE DATABASE {name}{source}")
        return name

    def drop_database(self, name: str) -> None:
        """Drop a database, ending any connection a test left open."""
        self.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def migrated_database(self) -> str:
        """A database with the current catalog schema (a copy of a template made once)."""
        if not self._template_ready:
            from ragloop.core.storage.catalog import Catalog

            self.execute(f"CREATE DATABASE {TEMPLATE} TEMPLATE template0")
            Catalog.open(self.url(TEMPLATE)).close()
            self._template_ready = True
        return self.create_database(TEMPLATE)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """The session's PostgreSQL server (started on first use; a failure fails the test)."""
    try:
        server = PostgresServer()
        try:
            server.start()
        except BaseException:
            server.stop()
            raise
    except (PostgresUnavailable, OSError, subprocess.SubprocessError) as exc:
        pytest.fail(f"cannot start the test PostgreSQL server: {exc}", pytrace=False)
    yield server
    server.stop()


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh database with the current catalog schema, dropped after the test."""
    name = pg_server.migrated_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture
def pg_empty_url(pg_server: PostgresServer) -> Iterator[str]:
    """A fresh empty database, dropped after the test."""
    name = pg_server.create_database()
    yield pg_server.url(name)
    pg_server.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a fresh catalog, once on SQLite and once on PostgreSQL (current schema)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def catalog(catalog_url: str) -> Iterator[Catalog]:
    """A catalog opened on ``catalog_url`` (SQLite, then PostgreSQL), closed after the test."""
    cat = Catalog.open(catalog_url)
    yield cat
    cat.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of an empty database, once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite'}"
    return str(request.getfixturevalue("pg_empty_url"))
