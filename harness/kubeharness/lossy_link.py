"""A TCP link to the real API server that can lose its answers.

The API server stores what it is sent; only the way back is cut. This is how a create is made
that succeeds on the server while its client hears nothing (a network partition after the
request, a load balancer that drops the connection), which freezing a process cannot produce on
purpose. Bytes are relayed, never read: TLS runs end to end between client and API server.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import yaml

_CHUNK = 65536


class LossyLink:
    """Relays every connection of a kubeconfig's clients to its API server, from loopback.

    ``kubeconfig`` is a copy of the original whose server is this link; the TLS names stay valid
    because the link listens on the API server's loopback address, only on another port.
    """

    def __init__(self, original: Path, directory: Path) -> None:
        config = yaml.safe_load(original.read_text())
        server = urllib.parse.urlsplit(config["clusters"][0]["cluster"]["server"])
        assert server.hostname is not None, server
        assert server.port is not None, server
        self._upstream = (server.hostname, server.port)
        self._listener = socket.create_server((server.hostname, 0))
        self._answers_lost = threading.Event()
        self._closed = threading.Event()
        for cluster in config["clusters"]:
            cluster["cluster"]["server"] = f"https://{server.hostname}:{self._listener.getsockname()[1]}"
        self.kubeconfig = directory / f"lossy-{original.name}"
        self.kubeconfig.write_text(yaml.safe_dump(config))
        threading.Thread(target=self._accept, name="lossy-link", daemon=True).start()

    @contextlib.contextmanager
    def answers_lost(self) -> Iterator[None]:
        """While inside, whatever the API server sends back is dropped; requests still arrive."""
        self._answers_lost.set()
        try:
            yield
        finally:
            self._answers_lost.clear()

    def close(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):  # wakes the accept() that close() alone would not
            socket.create_connection(self._listener.getsockname()[:2], timeout=1).close()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                downstream, _ = self._listener.accept()
                if self._closed.is_set():
                    downstream.close()
                    return
                upstream = socket.create_connection(self._upstream)
            except OSError:
                continue
            for source, sink, lossy in ((downstream, upstream, False), (upstream, downstream, True)):
                threading.Thread(target=self._relay, args=(source, sink, lossy), daemon=True).start()

    def _relay(self, source: socket.socket, sink: socket.socket, lossy: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(_CHUNK):
                if not (lossy and self._answers_lost.is_set()):
                    sink.sendall(chunk)
        for end in (source, sink):  # one side closed: so does the other, as a real link would
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
