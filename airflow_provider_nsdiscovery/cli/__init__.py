"""``airflow kubernetes-namespaces``: the namespace state table, seen by an operator.

Operators need the scheduler's view (which namespaces tasks may start in, and why not) without
reading scheduler logs or having a scheduler running, so the commands build the same discovery
from the same configuration, look once, and print what they found.
"""
