"""A StatsD server as small as the protocol: one UDP socket, every datagram kept as lines.

Airflow's StatsD client sends ``name:value|type`` lines over UDP and drops tags unless a
tag-aware flavour (Datadog, InfluxDB) is configured; this listener sees exactly what a plain StatsD
server would.
"""

from __future__ import annotations

import socket
import threading


class StatsdListener:
    def __init__(self) -> None:
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self._lines: list[str] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._receive, name="statsd-listener", daemon=True).start()

    def lines(self) -> list[str]:
        with self._lock:
            return list(self._lines)

    def gauges(self, stem: str) -> dict[str, float]:
        """The last value of each gauge whose name starts with ``stem``, by name without the stem."""
        found: dict[str, float] = {}
        for name, kind, value in self._samples(stem):
            if kind == "g":
                found[name] = value
        return found

    def counters(self, stem: str) -> dict[str, float]:
        """The total of each counter whose name starts with ``stem``, by name without the stem."""
        found: dict[str, float] = {}
        for name, kind, value in self._samples(stem):
            if kind == "c":
                found[name] = found.get(name, 0.0) + value
        return found

    def _samples(self, stem: str) -> list[tuple[str, str, float]]:
        """(name without the stem, type, value) of each ``name:value|type[|@rate]`` line."""
        samples = []
        for line in self.lines():
            name, _, rest = line.partition(":")
            value, _, kind = rest.partition("|")
            if name.startswith(stem):
                samples.append((name.removeprefix(stem), kind.partition("|")[0], float(value)))
        return samples

    def airflow_config(self, prefix: str = "airflow") -> dict[str, str]:
        """The ``[metrics]`` options that point Airflow at this listener."""
        return {
            "statsd_on": "True",
            "statsd_host": "127.0.0.1",
            "statsd_port": str(self.port),
            "statsd_prefix": prefix,
        }

    def close(self) -> None:
        self._socket.close()

    def _receive(self) -> None:
        while True:
            try:
                datagram = self._socket.recv(65535)
            except OSError:
                return  # closed
            with self._lock:
                self._lines.extend(datagram.decode(errors="replace").splitlines())
