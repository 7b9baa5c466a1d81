"""The planner service (`dynamo-scaling planner`): observe a live deployment through Prometheus and
the cluster, decide with the same policy code that replay runs, write replicas through DGDSA
`/scale`, and serve the operator's control API."""
