"""Stand-in for AISimulate, which ai-dynamo 1.6.1 declares but PyPI does not serve.

Only the names Dynamo's planner and replay import at module load are defined; using any of them
raises, so a planner mode that needs the performance model (optimization_target "sla") fails
loudly instead of silently running without it. Put on sys.path only by benchmarks/dynamo_planner.
"""

MESSAGE = ("AISimulate is not installed (PyPI does not serve it); Dynamo's planner runs here only in its "
           "load-based modes (optimization_target 'load', 'throughput' or 'latency'), not 'sla'")


class _Missing(type):
    def __getattr__(cls, name):
        raise ModuleNotFoundError(MESSAGE)

    def __call__(cls, *args, **kwargs):
        raise ModuleNotFoundError(MESSAGE)


def missing(name: str) -> type:
    """A class that raises on construction and on any attribute read."""
    return _Missing(name, (), {})
