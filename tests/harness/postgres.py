"""A throwaway PostgreSQL cluster on loopback, for tests that need Airflow's production database.

Several schedulers need a database with row locks (``SELECT ... FOR UPDATE SKIP LOCKED``), which
SQLite lacks: Airflow supports scheduler replicas on PostgreSQL and MySQL 8 only.
:class:`Postgres` runs Debian's ``postgresql`` binaries as a child of the test run: ``initdb`` into
a fresh temporary directory, then the ``postgres`` server itself on a free 127.0.0.1 port with its
unix socket in that directory. No system service, no port or socket outside the directory,
nothing left behind.

The server is started directly rather than through ``pg_ctl start``: pg_ctl detaches it, so a
killed test run would leave it running; as our child it gets ``PR_SET_PDEATHSIG`` like the control
plane's processes. PostgreSQL refuses to run as root; as root (CI, these machines) both initdb and
the server run as ``nobody``, which owns the directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import time
from pathlib import Path
from types import TracebackType

import pytest

from kubeharness.processes import die_with_parent, free_ports, owned_tmpdir, tail

INSTALL_HINT = "PostgreSQL server binaries not found: apt-get install -y postgresql"
UNPRIVILEGED_USER = "nobody"
DATABASE = "airflow"
STARTUP_TIMEOUT = 60.0


def find_bindir() -> Path | None:
    """The newest /usr/lib/postgresql/<version>/bin with initdb and postgres (Debian's layout)."""
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    for bindir in reversed(candidates):
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    return None


def require_postgres() -> Path:
    """The binaries' directory, or skip with how to install them; in CI a skip would hide that
    nothing was tested, so it fails instead (as :func:`kubeharness.require_cluster`)."""
    bindir = find_bindir()
    if bindir is not None:
        return bindir
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true but {INSTALL_HINT}", pytrace=False)
    pytest.skip(INSTALL_HINT)


class Postgres:
    """One PostgreSQL server with a database ``airflow``; a context manager that removes it all.

    ``url`` is the SQLAlchemy URL for Airflow's ``sql_alchemy_conn``; connections authenticate as
    the cluster's superuser by trust, which only processes on this machine can reach.
    """

    def __init__(self, bindir: Path | None = None) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise RuntimeError(INSTALL_HINT)
        self.bindir = found
        self.port = free_ports(1)[0]
        self.tmpdir = owned_tmpdir("postgres")
        self.datadir = self.tmpdir / "data"
        self.log_path = self.tmpdir / "postgres.log"
        self._process: subprocess.Popen[bytes] | None = None
        # PostgreSQL will not run as root; then as an unprivileged user owning the directory.
        self._user = UNPRIVILEGED_USER if os.geteuid() == 0 else None
        self.superuser = self._user or pwd.getpwuid(os.geteuid()).pw_name

    @property
    def url(self) -> str:
        return f"postgresql+psycopg2://{self.superuser}@127.0.0.1:{self.port}/{DATABASE}"

    def start(self) -> Postgres:
        try:
            if self._user is not None:
                os.chown(self.tmpdir, pwd.getpwnam(self._user).pw_uid, -1)
            self._run("initdb", "--auth=trust", "--encoding=UTF8", "--no-sync", f"--pgdata={self.datadir}")
            with self.log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        str(self.bindir / "postgres"),
                        f"-D{self.datadir}",
                        f"-p{self.port}",
                        "-clisten_addresses=127.0.0.1",
                        f"-cunix_socket_directories={self.tmpdir}",
                        # A test database: durability buys nothing, and fsync costs the shared disk.
                        "-cfsync=off",
                        "-csynchronous_commit=off",
                        "-cfull_page_writes=off",
                        "-cmax_connections=200",
                    ],
                    user=self._user,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                    preexec_fn=die_with_parent,  # noqa: PLW1509 - only prctl(2)
                )
            self._wait_ready()
            self._run("createdb", f"--host={self.tmpdir}", f"--port={self.port}", DATABASE)
        except BaseException:
            self.stop()
            raise
        return self

    def _run(self, tool: str, *args: str) -> None:
        result = subprocess.run(
            [str(self.bindir / tool), *args],
            user=self._user,
            cwd=self.tmpdir,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        if result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}):\n{result.stdout}{result.stderr}")

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(
                    f"postgres exited with code {self._process.returncode}:\n{tail(self.log_path)}"
                )
            ready = subprocess.run(
                [
                    str(self.bindir / "pg_isready"),
                    f"--host={self.tmpdir}",
                    f"--port={self.port}",
                    "--timeout=2",
                ],
                capture_output=True,
                check=False,
            )
            if ready.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"postgres not ready after {STARTUP_TIMEOUT:.0f} s:\n{tail(self.log_path)}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """Fast shutdown (SIGINT: clients disconnected, no waiting for them); idempotent."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        shutil.rmtree(self.tmpdir, ignore_errors=True)

    def __enter__(self) -> Postgres:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
