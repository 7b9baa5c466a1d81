"""Pure scaling algorithms shared by baselines and the planner."""
