"""The predictive SLA planner: observe -> predict -> size -> constrain, as pure stages."""
