"""Ad click prediction, step 4: what each fitted model made of each column of the feature frame.

On a real file a model that silently ignores a field (an id column too wide for its
categorical encoding, say) can look like a weak model when it is a blind one. After fitting,
:func:`field_usage` reads each model's fitted state and says, for every ``d_*`` / ``c_*`` column,
how the model uses it (hashed one-hot, embedding table, native categorical with how many values
kept...) or that it does not, and why; :func:`report_fields` puts the table in the blueprint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from mlsd.models import ClickEstimator, HistoricalCTR, LightGBMClick, NegativeDownsampled
from mlsd.report import Blueprint
from mlsd.systems.ad_click.model import HashedLogisticRegression
from mlsd.systems.ad_click.model_deep import DeepClickModel

__all__ = ["NOT_USED", "field_usage", "report_fields", "unused_fields"]

NOT_USED = "not used"


def _inner(model: ClickEstimator) -> ClickEstimator:
    while isinstance(model, NegativeDownsampled):
        model = model.estimator_
    return model


def field_usage(model: ClickEstimator, columns: Sequence[str]) -> dict[str, str]:
    """``{column: how the fitted model uses it}`` for every ``d_*`` / ``c_*`` column; a column
    it ignores reads ``"not used: <why>"``."""
    m = _inner(model)
    features = [c for c in columns if c.startswith(("d_", "c_"))]
    how: dict[str, str] = {}
    if isinstance(m, HistoricalCTR):
        for c in features:
            how[c] = "key (smoothed CTR)" if c == m.key_ else f"{NOT_USED} (one-key baseline)"
    elif isinstance(m, HashedLogisticRegression):
        for c in features:
            if c in m.categorical_:
                how[c] = f"hashed one-hot, 2^{m.n_bits}"
            elif c in m.dense_:
                how[c] = "linear"
    elif isinstance(m, LightGBMClick):
        for c in features:
            if c in m.dense_:
                how[c] = "numeric"
            elif c in m.categories_:
                n = len(m.categories_[c])
                how[c] = f"categorical, top {n}" if c in m.capped_ else f"categorical, {n}"
            elif c in m.dropped_:
                how[c] = f"{NOT_USED} (no value seen {m.min_cat_count} times)"
    elif isinstance(m, DeepClickModel):
        dim = getattr(m, "embedding_dim", "")
        for c in features:
            if c in m.categorical_:
                how[c] = f"embedding {dim}×{m.field_buckets}"
            elif c in m.dense_:
                how[c] = "dense input"
    for c in features:
        how.setdefault(c, f"{NOT_USED} ({type(m).__name__} does not read it)")
    return how


def unused_fields(usage: Mapping[str, str]) -> list[str]:
    """The columns ``usage`` (from :func:`field_usage`) marks as not used."""
    return [c for c, how in usage.items() if how.startswith(NOT_USED)]


def report_fields(bp: Blueprint, fields: Mapping[str, Mapping[str, str]]) -> None:
    """A table of model x column, and a line naming every column a learner does not use."""
    if not fields:
        return
    models = list(fields)
    columns = list(next(iter(fields.values())))
    bp.text(
        "Every field, by model: how each fitted model reads each column of the feature frame, "
        "or that it does not. *hashed one-hot, 2^b*: the value re-hashed with its field into "
        "2^b buckets shared by all fields; *linear*: standardized, one weight; *numeric*: tree "
        "splits on the value; *categorical, N*: LightGBM's native categorical over N values "
        "(*top N*: the N most frequent, the rest as missing); *embedding D×B*: a D-wide vector "
        "per value, ids taken modulo B per field; *dense input*: standardized, into the "
        "network; *key*: the baseline's one id column."
    )
    bp.table(["field", *models], [[c, *(fields[m].get(c, "") for m in models)] for c in columns])
    blind = {m: unused_fields(u) for m, u in fields.items()}
    lines = [
        f"`{m}` does not use " + ", ".join(f"`{c}`" for c in cs) for m, cs in blind.items() if cs
    ]
    if lines:
        bp.text("Columns not used: " + "; ".join(lines) + " (reasons in the table).")
