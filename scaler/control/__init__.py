"""Operator control of the planner: overrides, SLA targets, pause and advisory mode.

`state` is pure data and rules; `store` persists it in the cluster; `api` serves it over REST.
"""
