"""Stand-in for `aisimulate_core.sdk`: the two classes Dynamo's planner imports at load."""

from aisimulate import missing

ForwardPassPerfModelConfig = missing("ForwardPassPerfModelConfig")
RustForwardPassPerfModel = missing("RustForwardPassPerfModel")
