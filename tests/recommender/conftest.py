"""The recommender's settings as conf/recommender.yml gives them for the local target."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def settings(refarch_home):
    from refarch.recommender.settings import Settings
    from refarch.runtime.config import load_config

    return load_config("recommender").settings(Settings)
