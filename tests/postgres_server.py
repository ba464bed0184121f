"""A throw-away PostgreSQL server for tests: Debian's binaries, a temporary data folder, a free local port.

``PostgresServer`` runs ``initdb`` and ``pg_ctl`` from the Debian ``postgresql``
package (``/usr/lib/postgresql/<version>/bin``, or ``PATH``) as a non-root
user, because PostgreSQL refuses to run as root: when the tests run as root
(CI does), every server command goes through ``runuser -u postgres``. The
server listens on 127.0.0.1 only, with ``trust`` authentication for that
address, and is stopped (``pg_ctl stop -m immediate``) and its folder removed
by :meth:`stop`.

``postgres_binaries()`` returns None when the binaries are not installed, so a
fixture can skip with :data:`MISSING` as its one-line reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time

MISSING = ("PostgreSQL server binaries (initdb, pg_ctl) not found: "
           "apt-get install -y postgresql (CI installs them)")


def postgres_binaries() -> str | None:
    """The folder holding ``initdb`` and ``pg_ctl`` (newest Debian version first), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    for folder in candidates:
        if os.access(os.path.join(folder, "initdb"), os.X_OK) and os.access(os.path.join(folder, "pg_ctl"), os.X_OK):
            return folder
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl:
        return os.path.dirname(os.path.realpath(initdb))
    return None


def _version_key(folder: str) -> tuple[int, ...]:
    version = folder.split("/")[-2]
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One PostgreSQL cluster in a temporary folder; ``url`` is a SQLAlchemy URL of its ``postgres`` database."""

    def __init__(self, bin_dir: str, *, user: str = "postgres") -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        # The cluster's superuser is the OS user running it; that user must own the data folder.
        self.os_user = user if self.as_root else pwd.getpwuid(os.geteuid()).pw_name
        self.folder = tempfile.mkdtemp(prefix="pii-frames-pg-")
        self.data = os.path.join(self.folder, "data")
        self.log = os.path.join(self.folder, "server.log")
        if self.as_root:
            os.chmod(self.folder, 0o755)
            shutil.chown(self.folder, user=self.os_user)
        self.started = False

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
        command = list(args)
        if self.as_root:
            command = ["runuser", "-u", self.os_user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.folder)
        if result.returncode != 0:
            log = open(self.log).read()[-3000:] if os.path.exists(self.log) else ""
            raise RuntimeError(f"{' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{log}")
        return result

    def start(self) -> PostgresServer:
        self._run(os.path.join(self.bin_dir, "initdb"), "-D", self.data, "-U", self.os_user, "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync")
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.folder} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                   "-c shared_buffers=64MB")
        self._run(os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data, "-l", self.log, "-o", options,
                  "-w", "-t", "60", "start")
        self.started = True
        return self

    def url(self, database: str = "postgres", driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{self.os_user}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create a database and return its SQLAlchemy URL."""
        import sqlalchemy as sa

        engine = sa.create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as con:
                con.execute(sa.text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def stop(self) -> None:
        try:
            if self.started:
                for _ in range(3):
                    try:
                        self._run(os.path.join(self.bin_dir, "pg_ctl"), "-D", self.data, "-m", "immediate", "-w",
                                  "stop", timeout=60)
                        break
                    except RuntimeError:
                        time.sleep(1)
                self.started = False
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)
