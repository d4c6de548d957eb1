"""End-to-end pod networking across nodes: two agents, each in its own "host" network namespace."""
