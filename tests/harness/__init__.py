"""Test harness that runs a real Kubernetes control plane for the integration tests."""
