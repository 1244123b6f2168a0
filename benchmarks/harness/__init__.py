"""The benchmark harness: server processes, the load client, scenarios and the report."""
