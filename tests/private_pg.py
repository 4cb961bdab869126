"""A private PostgreSQL server for one test: ``initdb`` into a temporary directory, served on a
free loopback port, stopped and started again on demand — a real database outage, where
tests/faults.py's ``TcpProxy`` only cuts the connections. The shared test server is never
touched.

    with PrivatePostgres.create() as pg:       # initdb + start + CREATE DATABASE meterline
        url = pg.url                           # postgresql://postgres@127.0.0.1:PORT/meterline
        pg.stop()                              # pg_ctl stop -m fast (or mode="immediate")
        pg.start()                             # the same data, the same port
    # stopped (immediately) and deleted, however the block ended

The binaries come from /usr/lib/postgresql/<version>/bin (the newest there), or from the
directory in ``METERLINE_PG_BIN``. PostgreSQL refuses to run as root: as root, every command
runs as the ``postgres`` OS user (``runuser``), and the directory is made its. Where there are
no binaries (or, as root, no ``postgres`` user), ``create`` skips the test.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Self

import psycopg
import pytest

DATABASE = "meterline"
#: A hang guard for initdb and pg_ctl (they take about a second on an idle machine).
COMMAND_SECONDS = 180
#: Server settings for a throwaway cluster: no fsync (the machine does not crash under a test;
#: a stopped server still has every committed transaction, fsync only orders the disk writes).
SETTINGS = ("-c fsync=off -c full_page_writes=off -c max_connections=200 "
            "-c shared_buffers=32MB")


def _binaries() -> Path | None:
    named = os.environ.get("METERLINE_PG_BIN")
    if named:
        return Path(named) if (Path(named) / "initdb").exists() else None
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit()
                   else 0)
    return found[-1].parent if found else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PrivatePostgres:
    def __init__(self, bin_dir: Path, root: Path, user: pwd.struct_passwd | None) -> None:
        self.bin = bin_dir
        self.root = root
        self.data = root / "data"
        self.sockets = root / "sockets"
        self.log = root / "server.log"
        #: The OS user the server runs as (None: this process's own).
        self.user = user
        self.port = free_port()
        self.running = False

    @classmethod
    def create(cls) -> Self:
        """initdb, start and create the database; skips the test where that is impossible."""
        bin_dir = _binaries()
        if bin_dir is None:
            pytest.skip("no PostgreSQL server binaries (initdb) in /usr/lib/postgresql/*/bin; "
                        "set METERLINE_PG_BIN")
        user = None
        if os.geteuid() == 0:
            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root without a 'postgres' OS user to run PostgreSQL")
        # Not under pytest's tmp_path: that is private to root, and the server runs as postgres.
        root = Path(tempfile.mkdtemp(prefix="meterline-pg-"))
        pg = cls(bin_dir, root, user)
        try:
            pg.sockets.mkdir()
            if user is not None:
                for path in (root, pg.sockets):
                    os.chown(path, user.pw_uid, user.pw_gid)
            pg._run("initdb", "-D", str(pg.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
                    "--no-sync", "--no-instructions")
            pg.start()
            with psycopg.connect(pg.server_url("postgres"), autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{DATABASE}"')
        except BaseException:
            pg.destroy()
            raise
        return pg

    # -- addresses ------------------------------------------------------------------------
    def server_url(self, database: str = DATABASE) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    @property
    def url(self) -> str:
        """The test database's URL (the same across stops and starts)."""
        return self.server_url()

    # -- control --------------------------------------------------------------------------
    def _run(self, program: str, *args: str) -> str:
        argv: list[str] = [str(self.bin / program), *args]
        if self.user is not None:
            argv = ["runuser", "-u", self.user.pw_name, "--", *argv]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=COMMAND_SECONDS,
                              cwd=self.root, stdin=subprocess.DEVNULL)
        if done.returncode != 0:
            raise RuntimeError(f"{program} {' '.join(args)} exited {done.returncode}:\n"
                               f"{done.stdout}\n{done.stderr}\n{self.log_tail()}")
        return done.stdout

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "server log:\n" + "\n".join(text.splitlines()[-lines:])

    def _pg_ctl(self, *args: str) -> str:
        return self._run("pg_ctl", "-D", str(self.data), *args)

    def start(self) -> None:
        """Start the server (on the same port as before) and wait until it accepts
        connections."""
        options = f"-p {self.port} -k {self.sockets} -h 127.0.0.1 {SETTINGS}"
        self._pg_ctl("-l", str(self.log), "-w", "-t", str(COMMAND_SECONDS), "-o", options,
                     "start")
        self.running = True
        deadline = time.monotonic() + COMMAND_SECONDS
        while True:  # pg_ctl -w waits for the socket; this also checks TCP and the login
            try:
                with psycopg.connect(self.server_url("postgres"), connect_timeout=5):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server: ``fast`` ends the sessions and shuts down cleanly; ``immediate``
        quits at once (as a crash), recovering from its WAL at the next start."""
        if not self.running:
            return
        self._pg_ctl("-m", mode, "-w", "-t", str(COMMAND_SECONDS), "stop")
        self.running = False

    def destroy(self) -> None:
        """Stop the server if it runs, and delete everything of it."""
        try:
            if self.running or (self.data / "postmaster.pid").exists():
                with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                    self._pg_ctl("-m", "immediate", "-w", "-t", "60", "stop")
                self.running = False
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.destroy()

    def psql(self, sql: str, args: Sequence[object] = ()) -> list[tuple[object, ...]]:
        """Run one statement on the test database; its rows (if any)."""
        with psycopg.connect(self.url, autocommit=True) as conn:
            cursor = conn.execute(sql, tuple(args))  # type: ignore[arg-type]
            return list(cursor.fetchall()) if cursor.description else []
