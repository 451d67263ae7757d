"""The local control plane: etcd, kube-apiserver and kube-controller-manager as child processes.

The binaries (see binaries.py) run on 127.0.0.1 with a per-run CA (pki.py), a static admin token
and ServiceAccount signing keys, so clients authenticate exactly as they would on a real
cluster. Each process is a child of the test run and dies with it (processes.py).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import ssl
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from kubeharness import controller_manager
from kubeharness.cluster import STARTUP_TIMEOUT, Cluster
from kubeharness.pki import write_pki
from kubeharness.processes import (
    die_with_parent,
    forget,
    free_ports,
    owned_tmpdir,
    stop_at_exit,
    tail,
    terminate,
)
from kubeharness.webhook_authorizer import WebhookAuthorizer

SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc"

_LOOPBACK = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""Readiness probes must reach 127.0.0.1 directly even when http_proxy is set."""

PORT_ATTEMPTS = 3


class PortTaken(RuntimeError):
    """A server could not listen: the port free_ports() picked was taken before the server bound it."""


class ControlPlane(Cluster):
    """etcd, kube-apiserver and kube-controller-manager as child processes of the test run.

    There is no kubelet or scheduler: pods stay Pending until a test asks the harness to act.
    The ServiceAccount admission plugin stays off, so a pod created right after its namespace
    does not race the controller that makes the `default` ServiceAccount.
    """

    def __init__(self, binaries: Path, *, webhook: WebhookAuthorizer | None = None) -> None:
        """With `webhook`, kube-apiserver authorizes by RBAC, then by that webhook."""
        self.binaries = binaries
        self.webhook = webhook
        self._webhook_flags: list[str] = []
        self._etcd: subprocess.Popen[bytes] | None = None
        self._apiserver: subprocess.Popen[bytes] | None = None
        self._controller_manager: subprocess.Popen[bytes] | None = None

    @property
    def etcd_url(self) -> str:
        """etcd's client URL, for tests that act on storage directly (e.g. compaction)."""
        return f"http://127.0.0.1:{self._etcd_port}"

    @property
    def etcd_pid(self) -> int:
        if self._etcd is None:
            raise RuntimeError("etcd is not running")
        return self._etcd.pid

    @property
    def apiserver_pid(self) -> int:
        if self._apiserver is None:
            raise RuntimeError("kube-apiserver is not running")
        return self._apiserver.pid

    @property
    def controller_manager_pid(self) -> int:
        return self._require(self._controller_manager).pid

    def start(self) -> None:
        self.tmpdir = owned_tmpdir("controlplane")
        stop_at_exit(self)
        try:
            self.ca_file = self.tmpdir / "ca.crt"
            self.admin_token = secrets.token_urlsafe(32)
            write_pki(self.tmpdir)
            if self.webhook is not None:
                self._webhook_flags = self.webhook.start(self.tmpdir)
            # Static token file format: token,user,uid,"group1,group2".
            (self.tmpdir / "tokens.csv").write_text(
                f'{self.admin_token},nsd-admin,nsd-admin,"system:masters"\n'
            )
            self._start_servers()
            self._start_controller_manager()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Idempotent, and safe on a half-started control plane."""
        self._close_admin()
        if self._controller_manager is not None:
            terminate(self._controller_manager, grace=5.0)
            self._controller_manager = None
        if self._apiserver is not None:
            terminate(self._apiserver, grace=5.0)
            self._apiserver = None
        if self._etcd is not None:
            terminate(self._etcd, grace=5.0)
            self._etcd = None
        if self.webhook is not None:
            self.webhook.stop()
        forget(self)
        if hasattr(self, "tmpdir"):
            shutil.rmtree(self.tmpdir, ignore_errors=True)

    def restart_apiserver(self, *, downtime: float = 0.0) -> None:
        """SIGKILL, like a crash: clients see connections drop mid-watch, not a clean close."""
        terminate(self._require(self._apiserver), grace=0)
        self._apiserver = None
        time.sleep(downtime)
        self._start_apiserver()

    def restart_etcd(self, *, downtime: float = 0.0) -> None:
        """SIGKILL etcd and bring it back on the same data; returns once the API is ready again."""
        terminate(self._require(self._etcd), grace=0)
        self._etcd = None
        time.sleep(downtime)
        self._start_etcd()
        self._wait_ready(self._require(self._apiserver), "kube-apiserver", self._readyz_probe())

    def revive(self) -> None:
        """Start again whatever a fault test left dead or frozen (a restart that failed half-way,
        a SIGSTOPped kube-apiserver), so the next test finds a whole control plane."""
        if self._apiserver is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._apiserver.pid, signal.SIGCONT)
        if self._etcd is None or self._etcd.poll() is not None:
            self._start_etcd()
        if self._apiserver is None or self._apiserver.poll() is not None:
            self._start_apiserver()

    @staticmethod
    def _require(process: subprocess.Popen[bytes] | None) -> subprocess.Popen[bytes]:
        if process is None:
            raise RuntimeError("control plane is not started")
        return process

    def _spawn(self, name: str, argv: list[str]) -> subprocess.Popen[bytes]:
        # PDEATHSIG fires when the forking *thread* exits, so a restart from a helper thread
        # must not set it or the new process would die with that thread.
        from_main = threading.current_thread() is threading.main_thread()
        with (self.tmpdir / f"{name}.log").open("ab") as log:
            return subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                # Own session: a Ctrl-C meant for pytest must not kill etcd before the
                # fixtures' teardown has run.
                start_new_session=True,
                preexec_fn=die_with_parent if from_main else None,  # noqa: PLW1509 - only prctl(2)
            )

    def _start_servers(self) -> None:
        """etcd and kube-apiserver on fresh ports, and again on others if a port was taken meanwhile.

        free_ports() must release its ports before the servers bind them, and test sessions or
        benchmarks running beside this one pick ports too. The readiness probes only accept our own
        servers (etcd by member name, kube-apiserver by our CA and token), so a port taken by another
        run's server shows as our server failing to listen, never as a shared etcd.
        """
        self._etcd_name = f"nsd-{secrets.token_hex(4)}"
        for attempt in range(1, PORT_ATTEMPTS + 1):
            self._etcd_port, self._etcd_peer_port, self._apiserver_port = free_ports(3)
            self.host = f"https://127.0.0.1:{self._apiserver_port}"
            try:
                self._start_etcd()
                self._start_apiserver()
                return
            except PortTaken:
                if attempt == PORT_ATTEMPTS:
                    raise
                for process in (self._apiserver, self._etcd):
                    if process is not None:
                        terminate(process, grace=0)
                self._apiserver = self._etcd = None
                shutil.rmtree(self.tmpdir / "etcd-data", ignore_errors=True)

    def _start_etcd(self) -> None:
        client_url = f"http://127.0.0.1:{self._etcd_port}"
        peer_url = f"http://127.0.0.1:{self._etcd_peer_port}"
        self._etcd = self._spawn(
            "etcd",
            [
                str(self.binaries / "etcd"),
                f"--name={self._etcd_name}",
                f"--data-dir={self.tmpdir / 'etcd-data'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster={self._etcd_name}={peer_url}",
                "--unsafe-no-fsync",
            ],
        )

        def probe() -> bool:
            with _LOOPBACK.open(f"{client_url}/health", timeout=2) as response:
                if b'"health":"true"' not in response.read():
                    return False
            # Healthy, but ours? Another run's etcd on this port would answer /health too.
            with _LOOPBACK.open(f"{client_url}/v3/cluster/member/list", data=b"{}", timeout=2) as response:
                return f'"name":"{self._etcd_name}"'.encode() in response.read()

        self._wait_ready(self._etcd, "etcd", probe)

    def _start_apiserver(self) -> None:
        tmp = self.tmpdir
        self._apiserver = self._spawn(
            "kube-apiserver",
            [
                str(self.binaries / "kube-apiserver"),
                f"--etcd-servers=http://127.0.0.1:{self._etcd_port}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={self._apiserver_port}",
                f"--tls-cert-file={tmp / 'apiserver.crt'}",
                f"--tls-private-key-file={tmp / 'apiserver.key'}",
                "--authorization-mode=RBAC,Webhook" if self.webhook else "--authorization-mode=RBAC",
                *self._webhook_flags,
                f"--token-auth-file={tmp / 'tokens.csv'}",
                f"--service-account-key-file={tmp / 'sa.pub'}",
                f"--service-account-signing-key-file={tmp / 'sa.key'}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--api-audiences={SERVICE_ACCOUNT_ISSUER}",
                "--service-cluster-ip-range=10.0.0.0/24",
                "--disable-admission-plugins=ServiceAccount",
                # The lease reconciler would try to publish 127.0.0.1 as the `kubernetes`
                # Service's endpoint, which validation rejects as loopback, every 10 s.
                "--endpoint-reconciler-type=none",
            ],
        )
        self._wait_ready(self._apiserver, "kube-apiserver", self._readyz_probe())

    def restart_controller_manager(self) -> None:
        """A fresh kube-controller-manager: after API-server outages its informers reconnect with
        a backoff of up to 30 s and its namespace queue holds long per-item backoffs, which would
        delay the next test's namespace deletions by as much."""
        if self._controller_manager is not None:
            terminate(self._controller_manager, grace=5.0)
        self._start_controller_manager()

    def _start_controller_manager(self) -> None:
        kubeconfig = self._write_kubeconfig("kube-controller-manager", self.admin_token)
        argv = controller_manager.argv(self.binaries, kubeconfig, self.tmpdir)
        self._controller_manager = self._spawn(controller_manager.BINARY, argv)
        probe = controller_manager.ready_probe(lambda: self._core)
        self._wait_ready(self._controller_manager, controller_manager.BINARY, probe)

    def _readyz_probe(self) -> Callable[[], bool]:
        opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=ssl.create_default_context(cafile=str(self.ca_file))),
        )
        request = urllib.request.Request(
            f"{self.host}/readyz", headers={"Authorization": f"Bearer {self.admin_token}"}
        )

        def probe() -> bool:
            with opener.open(request, timeout=2) as response:
                return bool(response.status == 200)

        return probe

    def _wait_ready(self, process: subprocess.Popen[bytes], name: str, probe: Callable[[], bool]) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            if process.poll() is not None:
                message = f"{name} exited with code {process.returncode} during startup"
                if "address already in use" in tail(self.tmpdir / f"{name}.log", lines=20):
                    raise PortTaken(message)
                self._fail(message)
            with contextlib.suppress(OSError):  # refused, reset, or HTTP 500 while not ready
                if probe():
                    return
            if time.monotonic() > deadline:
                self._fail(f"{name} not ready after {STARTUP_TIMEOUT:.0f} s")
            time.sleep(0.1)

    def _fail(self, message: str) -> NoReturn:
        logs = "\n".join(
            f"--- last lines of {name}.log ---\n{tail(self.tmpdir / f'{name}.log')}"
            for name in ("etcd", "kube-apiserver", controller_manager.BINARY)
        )
        raise RuntimeError(f"{message}\n{logs}")
