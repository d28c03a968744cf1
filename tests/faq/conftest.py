"""Small generated FAQ data shared by the FAQ tests (about 25 families, a few hundred questions)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from refarch.datasets.faq_generator import generate_faq_data
from refarch.datasets.stackoverflow import RawFaqData
from refarch.faq.prepare import PreparedFaq, prepare_faq
from refarch.faq.ranker import RankerParams
from refarch.faq.settings import Settings

# every knob of the generator, for tests that change one or two of them
GENERATOR: dict[str, Any] = {
    "n_families": 25,
    "min_duplicates": 8,
    "max_duplicates": 14,
    "near_miss_share": 0.5,
    "typo_rate": 0.03,
    "detail_keep": 0.6,
    "small_family_share": 0.0,
    "malformed_rows": 0,
    "seed": 3,
}
PARAMS = RankerParams(C=10.0, word_ngrams=2, char_ngrams=True, min_df=1, max_features=50_000)


def generate(**overrides: Any) -> RawFaqData:
    return generate_faq_data(**{**GENERATOR, **overrides})


@pytest.fixture(scope="session")
def small_faq() -> PreparedFaq:
    return prepare_faq(generate(), min_text=100, min_dupes=6, cleaning="strict")


@pytest.fixture(scope="session")
def faq_settings(config) -> Callable[..., Settings]:
    """conf/faq.yml for the local target with overrides, validated: `faq_settings(generator__seed=4)`."""
    from refarch.runtime.config import load_config

    conf = load_config("faq", "local", root=config.root)

    def make(**overrides: Any) -> Settings:
        return conf.settings(Settings, {k.replace("__", "."): v for k, v in overrides.items()})

    return make
