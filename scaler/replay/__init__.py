"""Planners judged on real traces inside Dynamo's own replay engine (ai-dynamo-runtime)."""
