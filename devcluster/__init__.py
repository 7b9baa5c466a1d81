"""The development and test environment, never installed: a local Kubernetes control plane built
from Go modules, a stand-in Dynamo operator running Dynamo's real frontend and mocker workers,
Prometheus, a trace load generator and the live scenario."""
