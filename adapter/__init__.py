"""`dynamo-scaling adapter`: the controller for DynamoGraphDeploymentScalingAdapters (DGDSA).

Each DGDSA exposes `/scale` for one service of a DynamoGraphDeployment; the controller carries
its replica count into the DGD. The rules (follow, revert, ownership, conditions) are pure
functions in `sync`; `reconcile`, `kube` and `leader` do the I/O.
"""
