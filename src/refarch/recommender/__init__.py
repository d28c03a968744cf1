"""Recommender pipeline: ingest, split, Spark ALS, evaluation, top-k for every user, publish for serving.

`settings` reads conf/recommender.yml, `params` declares each notebook's parameters, `steps`
holds what each notebook calls; the logic lives in `ingest`, `split`, `als`, `baseline`,
`evaluate`, `topk` and `publish` (`model` and `store` are what the served pyfunc runs on).
Modules are imported by name so that importing the package does not pull in Spark or MLflow.
"""
