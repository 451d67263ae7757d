"""A webhook authorizer the test process serves, for kube-apiserver's `Webhook` mode.

Clusters that authorize through a webhook (cloud IAM, OPA, ...) answer SelfSubjectRulesReview
with `incomplete`, because a webhook cannot list what it would allow; only access reviews give
an answer there. This authorizer allows exactly what a test declares and has no opinion on
anything else, so RBAC still decides the rest, as it does behind a real webhook.
"""

from __future__ import annotations

import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Allowance:
    user: str
    namespace: str
    resource: str
    verbs: frozenset[str]
    subresource: str = ""

    def covers(self, user: str, attributes: dict[str, Any]) -> bool:
        return (
            user == self.user
            and attributes.get("namespace", "") == self.namespace
            and attributes.get("group", "") == ""
            and attributes.get("resource", "") == self.resource
            and attributes.get("subresource", "") == self.subresource
            and attributes.get("verb", "") in self.verbs
        )


@dataclass(frozen=True)
class Decision:
    user: str
    namespace: str
    verb: str
    resource: str
    allowed: bool


class WebhookAuthorizer:
    """Serves SubjectAccessReviews over TLS with the control plane's own serving certificate."""

    def __init__(self) -> None:
        self._allowances: list[Allowance] = []
        self._decisions: list[Decision] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def allow(self, user: str, namespace: str, resource: str, verbs: set[str], subresource: str = "") -> None:
        with self._lock:
            self._allowances.append(Allowance(user, namespace, resource, frozenset(verbs), subresource))

    def decisions(self) -> list[Decision]:
        """Every resource request the API server asked about, to prove the webhook decided."""
        with self._lock:
            return list(self._decisions)

    def decide(self, review: dict[str, Any]) -> bool:
        spec = review.get("spec", {})
        user, attributes = spec.get("user", ""), spec.get("resourceAttributes")
        if attributes is None:
            return False  # non-resource URLs: no opinion, RBAC's discovery rules answer them
        with self._lock:
            allowed = any(a.covers(user, attributes) for a in self._allowances)
            self._decisions.append(
                Decision(
                    user,
                    attributes.get("namespace", ""),
                    attributes.get("verb", ""),
                    "/".join(filter(None, (attributes.get("resource"), attributes.get("subresource")))),
                    allowed,
                )
            )
        return allowed

    def start(self, pki: Path) -> list[str]:
        """Serve, and return the kube-apiserver flags that point it here.

        The API server's certificate names 127.0.0.1 and its CA is the run's CA, so the webhook
        can present it and the API server verifies it like any other webhook's.
        """
        authorizer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                review = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                review["status"] = {"allowed": authorizer.decide(review)}  # not allowed = no opinion
                body = json.dumps(review).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(pki / "apiserver.crt", pki / "apiserver.key")
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, name="webhook-authorizer", daemon=True).start()
        self._server = server
        kubeconfig = pki / "webhook-authorizer.yaml"
        kubeconfig.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "authorizer",
                            "cluster": {
                                "server": f"https://127.0.0.1:{server.server_address[1]}/authorize",
                                "certificate-authority": str(pki / "ca.crt"),
                            },
                        }
                    ],
                    "users": [{"name": "kube-apiserver", "user": {}}],
                    "contexts": [
                        {"name": "webhook", "context": {"cluster": "authorizer", "user": "kube-apiserver"}}
                    ],
                    "current-context": "webhook",
                }
            )
        )
        return [
            f"--authorization-webhook-config-file={kubeconfig}",
            "--authorization-webhook-version=v1",
            # Decisions must follow allow() at once, as with a webhook whose policy just changed.
            "--authorization-webhook-cache-authorized-ttl=0s",
            "--authorization-webhook-cache-unauthorized-ttl=0s",
        ]

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
