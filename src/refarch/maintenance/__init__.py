"""Predictive maintenance: ingest the five raw files, build features and labels, train an
MLlib classifier of the component that fails next, and score date ranges on a schedule."""

CLASSES = ("none", "comp1", "comp2", "comp3", "comp4")
"""Label values; the position is the label index the classifier learns."""
