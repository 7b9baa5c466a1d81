"""Dynamo scaling signals from Prometheus, served to HPA (external.metrics.k8s.io), KEDA
(metrics-api JSON and the external-scaler gRPC protocol) and the planner.

Importing the package (or `signals`, `prom`, `selectors`, `quantity`, `cache`) has no side
effects and pulls in neither FastAPI nor gRPC; the servers live in `api`, `keda_grpc`, `server`.
"""
