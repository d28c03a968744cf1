"""Jobs: the local runner for jobs/*.job.yml and offline bundle validation."""
