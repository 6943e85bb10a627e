"""A throwaway PostgreSQL server for tests: ``initdb`` into a temp dir, ``postgres`` on a free
port on 127.0.0.1, run as the ``postgres`` OS user (PostgreSQL refuses to run as root).

Usage (one per test session; one database or schema per test)::

    cluster = PostgresCluster.start()      # raises PostgresUnavailable if it cannot
    url = cluster.create_database()        # postgresql+psycopg://postgres@127.0.0.1:PORT/t_...
    url = cluster.create_schema()          # same, in a fresh schema of one database (faster)
    cluster.stop()

Durability is switched off (``fsync=off``): this is for tests only.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

from tests.support.servers import free_port


class PostgresUnavailable(RuntimeError):
    """No PostgreSQL binaries (or no OS user to run them as) on this machine."""


def find_bindir() -> Path | None:
    """``/usr/lib/postgresql/<newest>/bin`` (Debian layout), or ``$PG_BINDIR``."""
    if os.environ.get("PG_BINDIR"):
        d = Path(os.environ["PG_BINDIR"])
        return d if (d / "initdb").exists() else None
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(candidates[-1]).parent if candidates else None


class PostgresCluster:
    def __init__(self, bindir: Path, datadir: Path, port: int, as_user: str | None) -> None:
        self.bindir = bindir
        self.datadir = datadir
        self.port = port
        self.as_user = as_user
        self._names = itertools.count(1)

    # -- lifecycle --------------------------------------------------------------------------
    @classmethod
    def start(cls, timeout: float = 30.0) -> "PostgresCluster":
        bindir = find_bindir()
        if bindir is None:
            raise PostgresUnavailable("PostgreSQL binaries not found (looked in /usr/lib/postgresql/*/bin "
                                      "and $PG_BINDIR): apt-get install postgresql")
        as_user: str | None = None
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresUnavailable("running as root and there is no 'postgres' OS user to run "
                                          "PostgreSQL as") from None
            as_user = "postgres"
        top = Path(tempfile.mkdtemp(prefix="vulnwatch-pg-"))
        datadir = top / "data"
        sockdir = top / "sock"
        sockdir.mkdir()
        if as_user:
            pw = pwd.getpwnam(as_user)
            for p in (top, sockdir):
                os.chown(p, pw.pw_uid, pw.pw_gid)
        cluster = cls(bindir, datadir, free_port(), as_user)
        cluster._top = top
        cluster._sockdir = sockdir
        cluster._run(["initdb", "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                      "--no-sync", "--locale=C"])
        log = top / "postgres.log"
        cluster._run(["pg_ctl", "-D", str(datadir), "-l", str(log), "-w", "-t", str(int(timeout)), "-o",
                      f"-p {cluster.port} -k {sockdir} -c listen_addresses=127.0.0.1 -c fsync=off "
                      "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200",
                      "start"])
        cluster._wait(timeout)
        return cluster

    def _run(self, argv: list[str]) -> None:
        cmd = [str(self.bindir / argv[0]), *argv[1:]]
        if self.as_user:
            cmd = ["runuser", "-u", self.as_user, "--", *cmd]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd="/")
        if proc.returncode != 0:
            log = getattr(self, "_top", None)
            tail = ""
            if log and (log / "postgres.log").exists():
                tail = (log / "postgres.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{argv[0]} failed ({proc.returncode}): {proc.stderr.strip()}\n{tail}")

    def _wait(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        try:
            self._run(["pg_ctl", "-D", str(self.datadir), "-m", "immediate", "-w", "stop"])
        finally:
            shutil.rmtree(self._top, ignore_errors=True)

    # -- databases --------------------------------------------------------------------------
    def dsn(self, database: str) -> str:
        return f"host=127.0.0.1 port={self.port} user=postgres dbname={database}"

    def url(self, database: str) -> str:
        """SQLAlchemy URL of ``database``."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = name or f"t_{next(self._names)}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def create_schema(self, database: str = "postgres", name: str | None = None) -> str:
        """A new empty schema in ``database`` (much faster than a new database); returns a
        SQLAlchemy URL whose connections use it as their ``search_path``."""
        import psycopg

        name = name or f"s_{next(self._names)}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(self.dsn(database), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"')
        return f"{self.url(database)}?options=-csearch_path%3D{name}"

    def drop_database(self, name: str) -> None:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
