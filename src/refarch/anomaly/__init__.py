"""Many-models anomaly scoring: one detector per (device, sensor), trained and scored in parallel."""
