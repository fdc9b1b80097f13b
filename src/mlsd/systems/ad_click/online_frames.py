"""Ad click prediction, step 6: the online tables as columnar frames.

The online store of the chapter holds, per namespace (user, ad, advertiser, user × category,
user × ad, global), the latest raw statistics of millions of keys. They travel as frames, never as
one Python dictionary per row: a string ``key`` column (Arrow-backed) and value columns in compact
dtypes. :func:`~.features.online_tables` (the whole log) and
:meth:`~.streaming.StreamingFeatures.tables` (the carried counts) both build them here, so they
agree column for column, and :class:`mlsd.stores.FrameStore` serves them as they are.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlsd.stores import KEY

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


def entity_frame(table: pd.DataFrame, key: str, attrs: Sequence[str], imps: np.ndarray,
                 clicks: np.ndarray) -> pd.DataFrame:  # fmt: skip
    """An entity namespace (``user``, ``ad``): its attributes and counts, in table order."""
    columns = {c: table[c].to_numpy() for c in attrs} | {"imps": imps, "clicks": clicks}
    return table_frame(table[key].to_numpy(), columns)


def global_frame(imps: int, clicks: int, as_of_day: int) -> pd.DataFrame:
    """The ``global`` namespace: one row ``"all"`` with the overall counts and the clock."""
    row = {"imps": np.array([imps], np.int64), "clicks": np.array([clicks], np.int64),
           "as_of_day": np.array([as_of_day], np.int64)}  # fmt: skip
    return pd.DataFrame({KEY: pd.array(["all"], dtype="str"), **row})
