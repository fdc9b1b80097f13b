"""Ad click prediction, step 3 online: the feature store's tables and the batched reads of them.

The online store of the chapter holds, per namespace (user, ad, advertiser, user × category,
user × ad, global), the latest raw statistics of millions of keys. They travel as frames, never as
one Python dictionary per row: a string ``key`` column (Arrow-backed) and value columns in compact
dtypes. :func:`~.features.online_tables` (the whole log) and
:meth:`~.features_streaming.StreamingFeatures.tables` (the carried counts) both build them here,
so they agree column for column, and :class:`mlsd.stores.FrameStore` serves them as they are.

The serving path (:func:`~.features.request_features`) reads them back here too: one batched
store round trip per namespace, an unknown user or ad raising :class:`UnknownIdError`, a store
without the tables :class:`TablesMissingError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlsd.stores import KEY, OnlineStore, read_columns

Tables = dict[str, pd.DataFrame]
"""Online tables: namespace -> frame with a string ``key`` column and value columns."""


def _compact(values: Any) -> Any:
    """A column in a compact dtype: the smallest int that holds it, strings as categories."""
    arr = np.asarray(values)
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.int64)
        for t in (np.int8, np.int16, np.int32):
            info = np.iinfo(t)
            if arr.size == 0 or (arr.min() >= info.min and arr.max() <= info.max):
                return arr.astype(t)
        return arr
    if arr.dtype.kind in "OUT":
        return pd.Categorical(arr)
    return arr


def table_frame(keys: Any, columns: Mapping[str, Any]) -> pd.DataFrame:
    """An online table: the ``key`` column (as strings) and compact value columns."""
    key = pa.array(np.asarray(keys)).cast(pa.string()) if not isinstance(keys, pa.Array) else keys
    frame = {KEY: pd.array(key, dtype="str")} | {c: _compact(v) for c, v in columns.items()}
    return pd.DataFrame(frame)


def pair_keys(left: Any, right: Any) -> pa.Array:
    """``"{left}:{right}"`` per row (arrays or Arrow arrays), built in Arrow: no Python string
    per row. Object arrays (strings) go through their distinct values."""

    def text(a: Any) -> pa.Array:
        if isinstance(a, pa.Array):
            return a.cast(pa.string())
        a = np.asarray(a)
        if a.dtype.kind == "O":
            codes, uniques = pd.factorize(a)
            return pc.take(pa.array(np.asarray(uniques).astype(str)), pa.array(codes))
        return pa.array(a).cast(pa.string())

    joined: pa.Array = pc.binary_join_element_wise(text(left), text(right), ":")
    return joined


def entity_frame(
    table: pd.DataFrame, key: str, attrs: Sequence[str], imps: np.ndarray, clicks: np.ndarray
) -> pd.DataFrame:
    """An entity namespace (``user``, ``ad``): its attributes and counts, in table order."""
    columns = {c: table[c].to_numpy() for c in attrs} | {"imps": imps, "clicks": clicks}
    return table_frame(table[key].to_numpy(), columns)


def global_frame(imps: int, clicks: int, as_of_day: int) -> pd.DataFrame:
    """The ``global`` namespace: one row ``"all"`` with the overall counts and the clock."""
    row = {
        "imps": np.array([imps], np.int64),
        "clicks": np.array([clicks], np.int64),
        "as_of_day": np.array([as_of_day], np.int64),
    }
    return pd.DataFrame({KEY: pd.array(["all"], dtype="str"), **row})


# --------------------------------------------------------------------------------------------
# Reading them back on the serving path
# --------------------------------------------------------------------------------------------


class UnknownIdError(LookupError):
    """A request names users or ads the online store does not know (``kind``: "user" / "ad")."""

    def __init__(self, kind: str, ids: list[int]) -> None:
        self.kind = kind
        self.ids = ids
        shown = ", ".join(map(str, ids[:10])) + (", ..." if len(ids) > 10 else "")
        super().__init__(f"unknown {kind} id(s): {shown}")

    def __str__(self) -> str:
        return str(self.args[0])


class TablesMissingError(LookupError):
    """The online store holds none of the run's tables (never loaded, or lost: an empty Redis)."""


def unique_keys(keys: list[str]) -> tuple[list[str], np.ndarray]:
    """Distinct keys in first-seen order and, per key, its position among them."""
    pos: dict[str, int] = {}
    inverse = np.fromiter((pos.setdefault(k, len(pos)) for k in keys), np.int64, len(keys))
    return list(pos), inverse


def stat_columns(
    store: OnlineStore, namespace: str, keys: list[str]
) -> tuple[np.ndarray, np.ndarray]:
    """``imps`` and ``clicks`` per key; a key the store lacks has seen nothing yet (zeros)."""
    uniq, inverse = unique_keys(keys)
    found, cols = read_columns(store, namespace, uniq, ("imps", "clicks"))
    imps = np.where(found, cols["imps"], 0).astype(np.int64)
    clicks = np.where(found, cols["clicks"], 0).astype(np.int64)
    return imps[inverse], clicks[inverse]


def entity_columns(
    store: OnlineStore, kind: str, ids: np.ndarray, fields: Sequence[str]
) -> dict[str, np.ndarray]:
    """``fields`` of every id (aligned with ``ids``) from the store; unknown ids raise."""
    uniq, inverse = np.unique(ids, return_inverse=True)
    found, cols = read_columns(store, kind, [str(i) for i in uniq.tolist()], fields)
    if not found.all():
        raise UnknownIdError(kind, [int(i) for i in uniq[~found].tolist()])
    return {f: values[inverse] for f, values in cols.items()}
