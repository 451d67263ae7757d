"""Airflow KubernetesExecutor that discovers its namespaces at runtime."""

__version__ = "0.1.0"
