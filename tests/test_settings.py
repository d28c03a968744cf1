"""Every pipeline's settings load for every target; a key unknown to the model, or missing, fails."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel

from refarch.runtime.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[1]
TARGETS = ("local", "dev", "staging", "prod")
PIPELINES = sorted(
    p.stem for p in (REPO / "conf").glob("*.yml") if "platform" not in (yaml.safe_load(p.read_text()) or {})
)


def settings_model(pipeline: str) -> type[BaseModel]:
    return importlib.import_module(f"refarch.{pipeline}.settings").Settings


def test_every_pipeline_has_a_settings_model():
    assert PIPELINES, "no pipeline conf files"
    for pipeline in PIPELINES:
        assert issubclass(settings_model(pipeline), BaseModel), pipeline


@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("pipeline", PIPELINES)
def test_settings_load_for_every_target(pipeline: str, target: str):
    config = load_config(pipeline, target=target, root=REPO)
    settings = config.settings(settings_model(pipeline))
    assert settings.model_dump(), f"{pipeline}/{target}: empty settings"


def _fields(model: type[BaseModel], prefix: str = ""):
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}", field
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            yield from _fields(annotation, f"{prefix}{name}.")


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_settings_models_hold_no_defaults(pipeline: str):
    """The value lives once, in conf/<pipeline>.yml: a model default would be a second copy."""
    with_default = [name for name, field in _fields(settings_model(pipeline)) if not field.is_required()]
    assert with_default == [], f"refarch.{pipeline}.settings: defaults in code for {with_default}"


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_an_unknown_or_missing_key_fails(pipeline: str, tmp_path: Path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "local.yml").write_text((REPO / "conf" / "local.yml").read_text())
    data = yaml.safe_load((REPO / "conf" / f"{pipeline}.yml").read_text())
    data.pop("targets", None)
    first = next(iter(data))
    (conf / f"{pipeline}.yml").write_text(yaml.safe_dump({**data, "no_such_key": 1}))
    with pytest.raises(ConfigError, match=f"conf/{pipeline}.yml.*no_such_key: unknown key"):
        load_config(pipeline, "local", root=tmp_path).settings(settings_model(pipeline))
    data.pop(first)
    (conf / f"{pipeline}.yml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match=f"conf/{pipeline}.yml.*{first}: Field required"):
        load_config(pipeline, "local", root=tmp_path).settings(settings_model(pipeline))
