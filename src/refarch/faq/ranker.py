"""The ranker: TF-IDF on words and character n-grams, a multinomial logistic regression over originals.

Each original is a class; its own text and its training duplicates are the examples.
predict_proba then gives, for a new question, a probability per original that sums to
one over all originals: the ranking and the probabilities come from one model.
Character n-grams make it robust to the typos and word forms of user questions.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline

from refarch.faq.metrics import RankingReport, ranking_report, true_ranks
from refarch.faq.prepare import CLEANERS
from refarch.faq.settings import Cleaning

log = logging.getLogger(__name__)

# words keep the punctuation of technical terms: c#, node.js, array_unique, ++
TOKEN_PATTERN = r"(?u)[\w][\w.#+\-]*[\w#+]|[\w#]"


@dataclass(frozen=True)
class RankerParams:
    """One hyperparameter trial; the values to try are `grid` in conf/faq.yml."""

    C: float
    word_ngrams: int  # words up to n-word sequences
    char_ngrams: bool  # add character 3-5-grams
    min_df: int
    max_features: int | None  # per vectorizer: bounds the model's size (coef is dense)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def build_pipeline(params: RankerParams) -> Pipeline:
    parts: list[tuple[str, Any]] = [
        (
            "words",
            TfidfVectorizer(
                analyzer="word",
                token_pattern=TOKEN_PATTERN,
                ngram_range=(1, params.word_ngrams),
                sublinear_tf=True,
                min_df=params.min_df,
                max_features=params.max_features,
                dtype=np.float32,
            ),
        )
    ]
    if params.char_ngrams:
        parts.append(
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(3, 5),
                    sublinear_tf=True,
                    min_df=params.min_df,
                    max_features=params.max_features,
                    dtype=np.float32,
                ),
            )
        )
    return Pipeline(
        [
            ("features", FeatureUnion(parts)),
            ("classifier", LogisticRegression(C=params.C, max_iter=1000)),
        ]
    )


class SingleQuestionScorer:
    """predict_proba of the fitted pipeline for one text, without scikit-learn's per-call overhead.

    A served request holds one question; input validation, joblib dispatch and sparse-matrix
    assembly then cost far more than the arithmetic. This uses the fitted vectorizers' own
    analyzers, vocabularies and idf weights and the classifier's coefficients, and touches
    only the coefficient columns of the n-grams present. Tests check it against the pipeline.
    """

    def __init__(self, pipeline: Pipeline) -> None:
        clf = pipeline.named_steps["classifier"]
        if len(clf.classes_) <= 2:
            raise ValueError("the fast path needs three or more originals (softmax over classes)")
        self._parts = []
        offset = 0
        for _, vectorizer in pipeline.named_steps["features"].transformer_list:
            self._parts.append(
                (vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.idf_.astype(np.float64), offset)
            )
            offset += len(vectorizer.vocabulary_)
        self._coef = np.ascontiguousarray(clf.coef_.T)  # (features x classes): gather rows per n-gram
        self._intercept = clf.intercept_.astype(np.float64)

    def probabilities(self, text: str) -> np.ndarray:
        columns: list[np.ndarray] = []
        weights: list[np.ndarray] = []
        for analyze, vocabulary, idf, offset in self._parts:
            counts: dict[int, int] = {}
            for gram in analyze(text):
                j = vocabulary.get(gram)
                if j is not None:
                    counts[j] = counts.get(j, 0) + 1
            if not counts:
                continue
            idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.fromiter(counts.values(), dtype=np.float64, count=len(counts))
            w = (1.0 + np.log(tf)) * idf[idx]  # sublinear tf x idf, as fitted
            w /= np.sqrt(np.dot(w, w))  # l2 norm per vectorizer, as FeatureUnion stacks them
            columns.append(idx + offset)
            weights.append(w)
        logits = self._intercept.copy()
        if columns:
            idx, w = np.concatenate(columns), np.concatenate(weights)
            logits += w @ self._coef[idx]
        logits -= logits.max()
        p = np.exp(logits)
        return p / p.sum()


class FaqRanker:
    """A fitted pipeline plus the originals it ranks, in a fixed column order."""

    def __init__(self, params: RankerParams, cleaning: Cleaning) -> None:
        if cleaning not in CLEANERS:
            raise ValueError(f"cleaning must be one of {sorted(CLEANERS)}, not '{cleaning}'")
        self.params = params
        self.cleaning = cleaning
        self.pipeline: Pipeline | None = None
        self.originals: pd.DataFrame | None = None  # id, answer_id, text in column order

    def fit(self, originals: pd.DataFrame, duplicates: pd.DataFrame) -> FaqRanker:
        """Learn from each original's text and its (training) duplicates; classes are answer ids."""
        if originals.empty:
            raise ValueError("no originals to learn from")
        texts = pd.concat([originals["text"], duplicates["text"]], ignore_index=True)
        labels = pd.concat([originals["answer_id"], duplicates["answer_id"]], ignore_index=True)
        pipeline = build_pipeline(self.params)
        pipeline.fit(texts.tolist(), labels.to_numpy())
        classes = pipeline.named_steps["classifier"].classes_
        by_answer = originals.set_index("answer_id")
        self.originals = (
            by_answer.loc[classes, ["id", "text"]].reset_index()[["id", "answer_id", "text"]].reset_index(drop=True)
        )
        self.pipeline = pipeline
        self.__dict__.pop("_scorer", None)
        log.info("fitted ranker %s on %d texts, %d originals", self.params, len(texts), len(classes))
        return self

    def _fitted(self) -> tuple[Pipeline, pd.DataFrame]:
        if self.pipeline is None or self.originals is None:
            raise RuntimeError("the ranker is not fitted")
        return self.pipeline, self.originals

    def probabilities(self, cleaned_texts: list[str]) -> np.ndarray:
        """(questions x originals) probabilities, columns in `self.originals` order."""
        pipeline, _ = self._fitted()
        return pipeline.predict_proba(cleaned_texts)

    def clean(self, text: str) -> str:
        return CLEANERS[self.cleaning](text)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_scorer"}  # rebuilt after loading

    def _single(self) -> SingleQuestionScorer | None:
        if "_scorer" not in self.__dict__:
            pipeline, originals = self._fitted()
            self._scorer = SingleQuestionScorer(pipeline) if len(originals) > 2 else None
        return self._scorer

    def top(self, question: str, n: int) -> list[tuple[int, str, float]]:
        """The n most likely originals for one raw question: (id, text, probability), best first."""
        _, originals = self._fitted()
        text = self.clean(question)
        scorer = self._single()
        probs = scorer.probabilities(text) if scorer is not None else self.probabilities([text])[0]
        n = min(n, len(probs))
        best = np.argpartition(-probs, n - 1)[:n]
        best = best[np.argsort(-probs[best], kind="stable")]
        ids, texts = originals["id"].to_numpy(), originals["text"].to_numpy()
        return [(int(ids[i]), str(texts[i]), float(probs[i])) for i in best]

    def _scored(self, duplicates: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        _, originals = self._fitted()
        column = pd.Series(np.arange(len(originals)), index=originals["answer_id"].to_numpy())
        known = duplicates["answer_id"].isin(column.index)
        if not known.all():
            raise ValueError(f"{int((~known).sum())} duplicates point at originals the ranker does not know")
        probs = self.probabilities(duplicates["text"].tolist())
        return probs, column.loc[duplicates["answer_id"]].to_numpy()

    def evaluate(self, duplicates: pd.DataFrame) -> RankingReport:
        """Acc@1, Acc@3 and mean rank of each duplicate's true original among all originals."""
        return ranking_report(*self._scored(duplicates))

    def rank_table(self, duplicates: pd.DataFrame) -> pd.DataFrame:
        """Per duplicate: its true original's rank and probability, and the top prediction."""
        _, originals = self._fitted()
        probs, true = self._scored(duplicates)
        best = probs.argmax(axis=1)
        rows = np.arange(len(probs))
        return pd.DataFrame(
            {
                "id": duplicates["id"].to_numpy(),
                "original_id": originals["id"].to_numpy()[true],
                "rank": true_ranks(probs, true),
                "probability": probs[rows, true],
                "predicted_id": originals["id"].to_numpy()[best],
                "predicted_probability": probs[rows, best],
            }
        )
