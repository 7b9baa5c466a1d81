"""The planner against a live deployment: observe through Prometheus and the cluster, decide
with the same policy code that replay runs, write replicas through DGDSA `/scale`."""
