"""The predictive SLA planner: pure decision stages (`planner`, `algorithms`), the service that
runs them against a cluster (`live`, `control`), and replay on traces (`replay`, `demo`)."""
