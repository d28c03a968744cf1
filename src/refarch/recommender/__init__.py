"""Recommender pipeline: ingest, split, Spark ALS, evaluation, top-k for every user.

Modules are imported by name (refarch.recommender.split, .als, ...) so that importing the
package does not pull in Spark or MLflow.
"""
