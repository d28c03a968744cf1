"""Small generated FAQ data shared by the FAQ tests (about 25 families, a few hundred questions)."""

from __future__ import annotations

import pytest

from refarch.datasets.faq_generator import generate_faq_data
from refarch.faq.prepare import PreparedFaq, prepare_faq

SMALL = {"n_families": 25, "min_duplicates": 8, "max_duplicates": 14, "small_family_share": 0.0, "seed": 3}


@pytest.fixture(scope="session")
def small_faq() -> PreparedFaq:
    raw = generate_faq_data(**SMALL)
    return prepare_faq(raw, min_text=100, min_dupes=6)
