import pandas as pd
import pytest

from refarch.datasets.faq_generator import _pick_families
from refarch.faq.text import clean_text

from .conftest import generate


def test_families_link_through_answer_ids_and_look_like_the_real_files():
    raw = generate(n_families=12, min_duplicates=5, max_duplicates=8, small_family_share=0.0, seed=1)
    assert list(raw.questions.columns) == ["Id", "AnswerId", "Text0", "CreationDate"]
    assert list(raw.answers.columns) == ["Id", "Text0"]
    assert len(raw.questions) == 12
    assert raw.questions["AnswerId"].is_unique
    assert set(raw.duplicates["AnswerId"]) == set(raw.questions["AnswerId"]) == set(raw.answers["Id"])
    sizes = raw.duplicates.groupby("AnswerId").size()
    assert sizes.between(5, 8).all()
    assert raw.questions["Text0"].str.startswith("<p>").all()
    # duplicates are asked after their original
    merged = raw.duplicates.merge(raw.questions, on="AnswerId", suffixes=("_dup", "_orig"))
    assert (pd.to_datetime(merged["CreationDate_dup"]) > pd.to_datetime(merged["CreationDate_orig"])).all()


def test_duplicates_share_technical_terms_with_their_original():
    raw = generate(n_families=8, min_duplicates=6, max_duplicates=6, small_family_share=0.0, seed=2)
    originals = raw.questions.set_index("AnswerId")["Text0"].map(clean_text)
    shared = []
    for row in raw.duplicates.itertuples():
        own = set(clean_text(row.Text0).split())
        shared.append(len(own & set(originals[row.AnswerId].split())) / len(own))
    assert pd.Series(shared).mean() > 0.3


def test_near_misses_differ_in_one_core_term():
    import numpy as np

    families = _pick_families(40, np.random.default_rng(0), near_miss_share=1.0)
    assert len(set(families)) == 40
    # every family after the first shares two of (tech, action, object) with some earlier family
    for i, fam in enumerate(families[1:], start=1):
        assert any(sum(a == b for a, b in zip(fam, other, strict=True)) == 2 for other in families[:i])


def test_same_seed_same_data_and_malformed_rows_are_set_aside():
    a = generate(n_families=5, seed=9, malformed_rows=2)
    b = generate(n_families=5, seed=9, malformed_rows=2)
    pd.testing.assert_frame_equal(a.duplicates, b.duplicates)
    assert sorted(a.malformed["reason"]) == ["id is not an integer"] * 2 + ["text is empty"] * 2
    assert not a.duplicates["Id"].str.startswith("x").any()


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="min_duplicates"):
        generate(min_duplicates=5, max_duplicates=2)
    with pytest.raises(ValueError, match="distinct families"):
        generate(n_families=10_000)
