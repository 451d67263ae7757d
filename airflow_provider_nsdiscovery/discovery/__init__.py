"""Which namespaces exist, which are selected, which the scheduler may use, and why."""
