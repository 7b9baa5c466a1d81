"""Stand-in for `aisimulate.runner`, imported at load by `dynamo.replay.config`."""

from aisimulate import MESSAGE


def canonical_performance_config(config, *, worker_type):
    raise ModuleNotFoundError(MESSAGE)
