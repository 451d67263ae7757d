"""Benchmarks of DynamicNamespaceKubernetesExecutor against a real local kube-apiserver.

Run from the repository root with the project's virtualenv::

    python -m bench.nsbench            # full run, writes docs/benchmarks.md
    python -m bench.nsbench --quick    # smoke run: few trials, small sizes, nothing written

What it measures (see docs/benchmarks.md for the method and the latest numbers):

1. latency of the watch-driven paths (label added -> watcher running, label added -> first pod,
   label removed -> watcher stopped, namespace deleted -> watcher stopped), of a RoleBinding
   removed -> forbidden (re-checked on a short interval; seen by the RBAC watch at default
   settings; met by the 403 of a launch), and of a draining namespace's last pod finished ->
   watcher stopped, beside the floor a bare kubernetes client gets from the same API server;
2. the cost of the pre-launch namespace check;
3. start-up at N = 10 .. 1000 permitted namespaces, against the upstream KubernetesExecutor in
   multi_namespace_mode with the same namespaces listed (one watcher process per namespace), and
   the scheduler loop's cost per task there (check on, bypassed, upstream);
4. the steady state at the largest N, idle, ours (RBAC watched) vs upstream over the same window
   (default 720 s in 60 s buckets): access reviews, pod watch re-opens, new TLS connections to the
   API server, other requests, CPU of the executor, kube-apiserver and etcd;
5. one start-up of ours at a huge N (--huge, default 5000).

Every measured executor runs in a child process of its own (``python -m bench.nsbench --child SPEC``),
configured through AIRFLOW__* environment variables exactly like the integration tests'
``make_executor`` fixture, and driven over a JSON-lines pipe (driver.py). The parent owns the
control plane, applies every change with the admin client and reads the API server's own /metrics
(probes.py). Scenarios live in scenarios/, the markdown page is written by report/.
"""
