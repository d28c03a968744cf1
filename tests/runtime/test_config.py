from pathlib import Path

import pytest

from refarch.runtime.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]


def _bundle(tmp_path: Path, local: str, pipeline: str | None = None) -> Path:
    (tmp_path / "databricks.yml").write_text("bundle:\n  name: t\n")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "local.yml").write_text(local)
    if pipeline is not None:
        (tmp_path / "conf" / "demo.yml").write_text(pipeline)
    return tmp_path


BASE = (
    "platform: local\npaths: {datasets: '{home}/d', checkpoints: '{home}/c', scratch: '{home}/t'}\n"
    "mlflow:\n  tracking_uri: sqlite:///{home}/m.db\n  registry_uri: sqlite:///{home}/m.db\n  experiment_prefix: ''\n"
)


def test_repo_targets_load(refarch_home):
    local = load_config(target="local")
    assert local.target.platform == "local"
    assert local.target.mlflow.tracking_uri == f"sqlite:///{refarch_home}/mlflow.db"
    for name in ("dev", "staging", "prod"):
        conf = load_config(target=name)
        assert conf.target.platform == "databricks"
        assert conf.target.mlflow.registry_uri == "databricks-uc"


def test_target_from_environment(monkeypatch):
    monkeypatch.setenv("REFARCH_TARGET", "staging")
    assert load_config().target.name == "staging"


def test_catalog_and_schema_from_bundle_variables(monkeypatch):
    monkeypatch.setenv("REFARCH_CATALOG", "cat_x")
    monkeypatch.setenv("REFARCH_SCHEMA", "sch_y")
    conf = load_config(target="dev")
    assert (conf.target.catalog, conf.target.schema_name) == ("cat_x", "sch_y")
    assert conf.target.paths.checkpoints == "/Volumes/cat_x/sch_y/checkpoints"


def test_databricks_paths_come_from_the_bundle_without_the_environment(monkeypatch):
    """A notebook opened by hand: the catalog and the dev-prefixed schema from the bundle's files."""
    for name in ("REFARCH_CATALOG", "REFARCH_SCHEMA"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REFARCH_USER", "jane_doe")
    dev = load_config("recommender", target="dev")
    assert dev.target.paths.datasets == "/Volumes/refarch_dev/dev_someone_refarch/datasets"
    assert dev.target.serving_store.prefix == "refarch:jane_doe:recommender:"
    assert dev.target.blob.account_url == "https://refarchdevdata.blob.core.windows.net"
    prod = load_config(target="prod")
    assert (prod.target.catalog, prod.target.schema_name) == ("refarch_prod", "refarch")
    assert prod.target.mlflow.dfs_tmp == "/Volumes/refarch_prod/refarch/tmp/mlflow"
    assert prod.target.blob.credential == "refarch-storage"


def test_an_unknown_placeholder_is_named(tmp_path):
    root = _bundle(tmp_path, BASE, "cache: '{volume}/x'\n")
    with pytest.raises(ConfigError, match=r"conf/demo.yml: unknown placeholder\(s\) \{volume\}"):
        load_config("demo", target="local", root=root)


def test_on_databricks_the_target_comes_from_the_bundle_path(monkeypatch, tmp_path):
    from refarch.runtime.config import current_target
    from refarch.runtime.workspace import TargetNotFound, target_from_path

    assert target_from_path("/Workspace/Users/a@b.c/.bundle/refarch/staging/files/notebooks/x") == "staging"
    assert target_from_path("/Workspace/Users/a@b.c/scratch/x") is None
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "17.3")
    monkeypatch.delenv("REFARCH_TARGET", raising=False)
    deployed = tmp_path / ".bundle" / "refarch" / "prod" / "files" / "notebooks"
    deployed.mkdir(parents=True)
    monkeypatch.chdir(deployed)
    assert current_target() == "prod"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(TargetNotFound, match="'target' widget"):
        current_target()
    monkeypatch.setenv("REFARCH_TARGET", "local")
    with pytest.raises(ConfigError, match="local target runs only off Databricks"):
        current_target()


def test_misspelled_key_is_named(tmp_path):
    root = _bundle(tmp_path, BASE + "spark:\n  driver_memry: 2g\n")
    with pytest.raises(ConfigError, match=r"conf/local.yml: spark.driver_memry: unknown key"):
        load_config(target="local", root=root)


def test_missing_key_is_named(tmp_path):
    root = _bundle(tmp_path, "platform: local\n")
    with pytest.raises(ConfigError, match=r"conf/local.yml: mlflow: Field required"):
        load_config(target="local", root=root)


def test_wrong_type_is_named(tmp_path):
    root = _bundle(tmp_path, BASE + "spark:\n  shuffle_partitions: many\n")
    with pytest.raises(ConfigError, match=r"spark.shuffle_partitions"):
        load_config(target="local", root=root)


def test_unknown_target_lists_known(tmp_path):
    root = _bundle(tmp_path, BASE)
    with pytest.raises(ConfigError, match=r"unknown target 'qa'.*targets: local"):
        load_config(target="qa", root=root)


def test_pipeline_params_merge_target_overrides(tmp_path):
    root = _bundle(
        tmp_path, BASE, "k: 10\nmodel:\n  rank: 8\n  reg: 0.1\ntargets:\n  local:\n    model:\n      rank: 4\n"
    )
    conf = load_config("demo", target="local", root=root)
    assert conf.pipeline == {"k": 10, "model": {"rank": 4, "reg": 0.1}}


def test_section_validates_with_named_key(tmp_path):
    from pydantic import BaseModel, ConfigDict

    class Model(BaseModel):
        model_config = ConfigDict(extra="forbid")
        rank: int
        reg: float

    root = _bundle(tmp_path, BASE, "model:\n  rank: eight\n  reg: 0.1\n")
    conf = load_config("demo", target="local", root=root)
    with pytest.raises(ConfigError, match=r"conf/demo.yml: model.rank"):
        conf.section(Model, "model")
