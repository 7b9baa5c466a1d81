"""Stand-in for AISimulate's core, imported at load by `dynamo.planner.core.perf_model`; see
benchmarks/dynamo_planner/stubs/aisimulate/__init__.py."""
