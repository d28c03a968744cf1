"""refarch: Azure AI reference architectures as one Databricks bundle."""

__version__ = "0.1.0"
