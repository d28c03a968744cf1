"""The refarch wheel: shared logic for the notebooks and jobs of the bundle.

pyspark is only a `local` extra: Databricks runtimes bring their own Spark, and
installing a second one on a cluster breaks it.
"""

from setuptools import find_packages, setup

CORE = [
    "pyyaml>=6.0",
    "pydantic>=2.7,<3",
    "numpy>=1.26",
    "pandas>=2.2,<3",
    "pyarrow>=15",
    "nbformat>=5.10",
    "jsonschema>=4.21",
    "databricks-sdk>=0.40",
    "databricks-bundles==1.22.1",
    "mlflow==3.17.2",
    "scikit-learn>=1.5",
    "redis>=5.0",
    "azure-storage-blob>=12.20",
    "azure-identity>=1.17",
    "fastapi>=0.115",
    "uvicorn[standard]>=0.30",
    "prometheus-client>=0.20",
    "matplotlib>=3.8",
    "httpx>=0.27",
]

LOCAL = [
    "pyspark==4.0.1",
    "ipykernel>=6.29",
]

DEV = [
    "pytest>=8.2",
    "pytest-timeout>=2.3",
    "ruff>=0.6",
    "kubernetes-validate>=1.31",
]

setup(
    name="refarch",
    version="0.1.0",
    description="Azure AI reference architectures as one Databricks bundle",
    package_dir={"": "src"},
    packages=find_packages("src"),
    include_package_data=True,
    package_data={"refarch": ["py.typed"], "refarch.jobs": ["schema/*.json", "schema/CLI_VERSION"]},
    python_requires=">=3.10",
    install_requires=CORE,
    extras_require={"local": LOCAL, "dev": DEV},
    entry_points={"console_scripts": ["refarch=refarch.cli:main"]},
)
