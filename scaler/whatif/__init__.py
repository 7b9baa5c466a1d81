"""What-if before an override: rebuild a deployment's recent traffic from Prometheus as a trace,
replay it under the current settings and a proposed change, and compare attainment and GPU-hours."""
