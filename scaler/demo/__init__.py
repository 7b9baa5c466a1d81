"""`dynamo-scaling demo`: the predictive planner beside a baseline on a bundled trace, inside
Dynamo's replay engine, with a live terminal view and a report."""
