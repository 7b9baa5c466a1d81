"""A stand-in for the Dynamo operator, for clusters without it (tests and the live demo).

It turns DynamoGraphDeployment services into labelled Pods, marks them Ready when their backing
(a timer, or a real Dynamo process) is ready, drains them on delete, and fills the DGD status.
"""
