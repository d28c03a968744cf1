"""The refarch wheel: shared logic for the notebooks and jobs of the bundle.

The core requirements accept what Databricks Runtime 17.3 LTS ML ships (requirements/dbr-17.3-lts-ml.txt,
checked by tests/test_runtime_fit.py), so installing the wheel on a job cluster upgrades or downgrades
nothing: it adds only redis (and optuna where a runtime lacks it). Everything else is an extra:
- `serving`: the scoring app (`refarch serve`), for the AKS image and local serving;
- `rmodel`: rpy2, for serving models written in R (the R itself comes from Debian);
- `images`: PyTorch and torchvision for the image classifier (what the ML runtime ships);
- `local`: what runs the bundle on a laptop or CI (Spark itself, the full MLflow with its SQLite
  registry), pinned to what the tests run here; Databricks runtimes bring their own Spark, and a second
  one on a cluster breaks it;
- `dev`: tests, linters and the offline bundle checks.
"""

from setuptools import find_packages, setup

CORE = [
    "pyyaml>=6.0",
    "pydantic>=2.7,<3",
    "numpy>=1.26",
    "pandas>=2.2,<3",
    "pyarrow>=15",
    "nbformat>=5.10",
    "databricks-sdk>=0.40",
    "mlflow-skinny>=3.0.1,<4",
    "scikit-learn>=1.5",
    "redis>=5.0",
    "azure-storage-blob>=12.20",
    "azure-identity>=1.17",
    "matplotlib>=3.8",
    "optuna>=3.6",  # the recommender's adaptive hyperparameter search
]

SERVING = [
    "fastapi>=0.115",
    "pyjwt[crypto]==2.15.1",  # Entra ID bearer tokens (`refarch serve --auth jwt`)
    "uvicorn[standard]>=0.30",
    "prometheus-client>=0.20",
    "httpx>=0.27",
]

# The R-backed pyfunc (refarch.rmodel): one embedded R per process. rpy2 3.6 needs R >= 4.5 in ABI
# mode; 3.5.17 runs on the R 4.2 that Debian 12 and the AKS R image ship.
RMODEL = [
    "rpy2==3.5.17",
]

# The image pipeline: PyTorch and torchvision as Databricks Runtime 17.3 LTS ML ships them (2.7.0 and 0.22.0)
# or newer. Locally the Makefile installs the CPU builds (torch 2.13.0, torchvision 0.28.0) itself, so pip
# never pulls the several-GB CUDA wheels for this extra.
IMAGES = [
    "torch>=2.7",
    "torchvision>=0.22",
    "pillow>=11.1",
]

LOCAL = [
    "pyspark==4.0.1",
    "mlflow==3.17.2",
    "optuna==3.6.1",  # as Databricks Runtime 17.3 LTS ML ships it
    "ipykernel>=6.29",
]

DEV = [
    "pytest>=8.2",
    "pytest-timeout>=2.3",
    "ruff>=0.6",
    "kubernetes-validate>=1.31",
    "jsonschema>=4.21",
    "databricks-bundles==1.22.1",
    "packaging>=24",
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
    extras_require={"serving": SERVING, "rmodel": RMODEL, "images": IMAGES, "local": LOCAL, "dev": DEV},
    entry_points={
        "console_scripts": [
            "refarch=refarch.cli:main",
            # the first task of every job on Databricks (python_wheel_task entry point)
            "refarch-check-parameters=refarch.jobs.check:main",
        ]
    },
)
