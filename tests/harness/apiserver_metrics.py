"""kube-apiserver's own count of the requests it served, read from its ``/metrics``.

The API server's view, not a client's: every request of every client, by verb and resource
(``apiserver_request_total``), and the long-running requests open now, watches among them
(``apiserver_longrunning_requests``). Used by the bench (bench/nsbench) and the scheduler HA load test.
"""

from __future__ import annotations

import re
import ssl
import time
import urllib.request
from collections import Counter
from collections.abc import Collection
from typing import Any

SCHEDULER_RESOURCES = frozenset(
    {
        "namespaces",
        "pods",
        "selfsubjectrulesreviews",
        "selfsubjectaccessreviews",
        "selfsubjectreviews",
    }
)
"""API server request kinds that the scheduler's identity makes; everything else on /metrics is the
API server talking to itself (leases, APF) or the bench scraping /metrics."""

_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)\{(.*)\} (\S+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


class ApiMetrics:
    """Reads kube-apiserver /metrics with the admin token."""

    def __init__(self, cluster: Any, resources: Collection[str] = SCHEDULER_RESOURCES) -> None:
        context = ssl.create_default_context(cafile=str(cluster.ca_file))
        self._opener = urllib.request.build_opener(
            urllib.request.ProxyHandler({}),
            urllib.request.HTTPSHandler(context=context),
        )
        self._request = urllib.request.Request(
            f"{cluster.host}/metrics",
            headers={"Authorization": f"Bearer {cluster.admin_token}"},
        )
        self._resources = frozenset(resources)

    def scrape(self) -> dict[str, Any]:
        """Completed requests by (verb, resource); open long-running requests by (verb, resource, scope)."""
        with self._opener.open(self._request, timeout=30) as response:
            text = response.read().decode()
        requests: Counter[str] = Counter()
        longrunning: Counter[str] = Counter()
        for line in text.splitlines():
            if not line.startswith(("apiserver_request_total{", "apiserver_longrunning_requests{")):
                continue
            match = _SAMPLE.match(line)
            if not match:
                continue
            labels = dict(_LABEL.findall(match.group(2)))
            value = float(match.group(3))
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource = f"{resource}/{labels['subresource']}"
            if match.group(1) == "apiserver_request_total":
                if labels.get("resource") in self._resources:
                    requests[f"{labels.get('verb')} {resource}"] += int(value)
            else:
                longrunning[f"{labels.get('verb')} {resource} {labels.get('scope')}"] += int(value)
        return {"requests": requests, "longrunning": longrunning, "t": time.monotonic()}

    def open_pod_watches(self) -> int:
        return int(self.scrape()["longrunning"]["WATCH pods namespace"])


def request_delta(before: dict[str, Any], after: dict[str, Any]) -> Counter[str]:
    delta = Counter(after["requests"])
    delta.subtract(before["requests"])
    return Counter({k: v for k, v in delta.items() if v})
