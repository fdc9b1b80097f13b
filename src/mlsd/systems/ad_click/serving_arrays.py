"""Ad click prediction, step 6: the online features of a request as arrays, by integer gathers.

The serving path of the chapter reads a user, an ad list and a context, and must hand the model
a feature batch within a fraction of the 10 ms budget. Built per request from string keys, hashed
strings and a pandas frame, that batch costs many times the model itself. :class:`OnlineArrays`
does the work once, when a run's online tables are loaded:

* every entity (user, ad) gets a row number (sorted int64 ids, one ``searchsorted`` per request);
* everything that depends on one entity alone is computed at load: its dense features (log
  counts, smoothed CTRs against the global prior, tenure and ad age on the store's clock), its
  hashed categoricals, the left and right parts of every feature cross
  (:func:`mlsd.features.cross_left` / :func:`~mlsd.features.cross_right`) and the advertiser's
  counts of every ad;
* the pair tables (user x category, user x ad) get sorted int64 composite keys of row numbers.

A request then does integer gathers into two contiguous blocks, ``dense`` (rows x
:data:`~.features.DENSE_FEATURES`, float64) and ``cat`` (rows x
:data:`~.features.CATEGORICAL_FEATURES`, int64): the very values :func:`~.features.make_features`
gives on the frame path (the test holds them equal), with no Python object per candidate.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from mlsd.features import combine_cross, cross_left, cross_right, hash_values, smoothed_rate
from mlsd.stores import KEY, FrameStore
from mlsd.systems.ad_click.features import (
    CATEGORICAL_FEATURES,
    CROSSES,
    DEFAULT_PRIOR_CTR,
    DENSE_FEATURES,
    GLOBAL_PRIOR_STRENGTH,
    PRIOR_STRENGTH,
    UnknownIdError,
)

log = logging.getLogger(__name__)

NAMESPACES = ("user", "ad", "advertiser", "user_category", "user_ad", "global")
_INT_ATTRS = ("ad_id", "advertiser_id", "age_bucket")
_USER_CATS = ("age_bucket", "gender", "country")
_AD_CATS = ("ad_id", "advertiser_id", "category", "format")
_CONTEXT_LEFT = ("device", "hour")  # the context fields on the left of a cross
DENSE_INDEX = {c: j for j, c in enumerate(DENSE_FEATURES)}
CAT_INDEX = {c: j for j, c in enumerate(CATEGORICAL_FEATURES)}
_CONTEXT_COLS = np.array([CAT_INDEX[c] for c in ("c_device", "c_hour", "c_position")])
_CIRCLE_COLS = np.array([DENSE_INDEX[c] for c in ("d_hour_sin", "d_hour_cos")])
_PAIR_DENSE = ("d_ucat_imps", "d_ucat_ctr", "d_uad_imps", "d_uad_clicks", "d_position")
_Context = tuple[np.ndarray, np.ndarray, np.ndarray]  # hashed, cross left parts, hour circle


class ArraysUnavailableError(ValueError):
    """The tables cannot be served by integer gathers (ids that are not canonical integers, a
    namespace missing); the scorer then keeps the frame path, which handles any table."""


def _attr(frame: pd.DataFrame, col: str) -> np.ndarray:
    """A column as the frame path sees it after the store: ints as int64, strings as objects."""
    s = frame[col]
    if isinstance(s.dtype, pd.CategoricalDtype) or not isinstance(s.dtype, np.dtype):
        return s.to_numpy(dtype=object)
    if col in _INT_ATTRS:
        return s.to_numpy(dtype=np.int64)
    return s.to_numpy()


def _ints(text: pa.Array, what: str) -> np.ndarray:
    """Strings that must be the canonical text of int64s (the frame path looks keys up as
    ``str(int(id))``), as int64."""
    try:
        ints = pc.cast(text, pa.int64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise ArraysUnavailableError(f"{what}: not integers ({exc})") from exc
    if not pc.all(pc.equal(pc.cast(ints, text.type), text)).as_py():
        raise ArraysUnavailableError(f"{what}: not canonical integers")
    return np.asarray(ints.to_numpy(zero_copy_only=False), dtype=np.int64)


def _keys(frame: pd.DataFrame) -> pa.Array:
    return pa.array(frame[KEY].astype(str), type=pa.large_string())


def _sorted(ids: np.ndarray, namespace: str) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(ids, kind="stable")
    ids = ids[order]
    if ids.size > 1 and (ids[1:] == ids[:-1]).any():
        raise ArraysUnavailableError(f"{namespace}: duplicate keys")
    return ids, order


def _positions(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Positions of ``ids`` in ``sorted_ids`` (clipped) and whether each was found."""
    if sorted_ids.size == 0:
        return np.zeros(len(ids), np.int64), np.zeros(len(ids), bool)
    pos = np.minimum(np.searchsorted(sorted_ids, ids), sorted_ids.size - 1)
    return pos, sorted_ids[pos] == ids


@dataclass(frozen=True)
class _Pairs:
    """A pair namespace: sorted composite keys (``left row * width + right row``) and the
    matching counts as float64."""

    keys: np.ndarray
    imps: np.ndarray
    clicks: np.ndarray

    def lookup(self, composite: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pos, found = _positions(self.keys, composite)
        return np.where(found, self.imps[pos], 0.0), np.where(found, self.clicks[pos], 0.0)


class OnlineArrays:
    """A run's online tables (a :class:`~mlsd.stores.FrameStore`'s frames) pre-encoded for
    integer gathers; :meth:`gather` gives a request's feature blocks. Read-only once built, so
    threads share it."""

    def __init__(self, tables: Mapping[str, pd.DataFrame | None]) -> None:
        frames = {ns: f for ns in NAMESPACES if (f := tables.get(ns)) is not None}
        missing = [ns for ns in NAMESPACES if ns not in frames]
        if missing:
            raise ArraysUnavailableError(f"online tables lack {missing}")
        glob = frames["global"]
        if glob.empty:
            raise ArraysUnavailableError("the global table is empty")
        all_imps, all_clicks = (int(glob[c].iloc[0]) for c in ("imps", "clicks"))
        self.as_of_day = float(glob["as_of_day"].iloc[0])
        rate = smoothed_rate(all_clicks, all_imps, DEFAULT_PRIOR_CTR, GLOBAL_PRIOR_STRENGTH)
        self.prior = float(rate)
        self._users(frames["user"])
        self._ads(frames["ad"], frames["advertiser"])
        self.ucat = self._pairs(frames["user_category"], self._category_rows, self.n_categories)
        self.uad = self._pairs(frames["user_ad"], self._ad_rows, len(self.ad_ids))
        self._context: dict[tuple[int, str], _Context] = {}
        self._check_coverage()

    def _check_coverage(self) -> None:
        """Every feature column is written by :meth:`gather` (a column added to the feature
        pipeline and not here would be left uninitialised: refuse, the frame path serves)."""
        dense = {*self.user_dense_cols, *self.ad_dense_cols, *_CIRCLE_COLS}
        dense |= {DENSE_INDEX[c] for c in _PAIR_DENSE}
        cat = {*_CONTEXT_COLS, *self.user_cat_cols, *self.ad_cat_cols, *self.cross_cols}
        missing = [c for c, j in DENSE_INDEX.items() if j not in dense]
        missing += [c for c, j in CAT_INDEX.items() if j not in cat]
        if missing:
            raise ArraysUnavailableError(f"no gather for the feature columns {missing}")

    # --- load time -----------------------------------------------------------------------------

    def _users(self, users: pd.DataFrame) -> None:
        ids, order = _sorted(_ints(_keys(users), "user keys"), "user")
        u = users.iloc[order]
        self.user_ids = ids
        imps, clicks = (u[c].to_numpy(np.float64) for c in ("imps", "clicks"))
        tenure = np.clip(self.as_of_day - u["signup_day"].to_numpy(np.float64), 0.0, None)
        self.user_dense_cols = np.array(
            [DENSE_INDEX[c] for c in ("d_user_imps", "d_user_ctr", "d_user_tenure_days")]
        )
        self.user_dense = np.column_stack(
            [
                np.log1p(imps),
                smoothed_rate(clicks, imps, self.prior, PRIOR_STRENGTH["user"]),
                np.log1p(tenure),
            ]
        )
        values = {c: _attr(u, c) for c in _USER_CATS}
        self.user_cat_cols = np.array([CAT_INDEX[f"c_{c}"] for c in _USER_CATS])
        self.user_cat = np.column_stack([hash_values(c, values[c]) for c in _USER_CATS])
        # the left part of each cross: the user's fields first, then the context's
        user_left = sorted({a for a, _ in CROSSES if a in values})
        left_fields = [*user_left, *_CONTEXT_LEFT]
        if any(a not in left_fields for a, _ in CROSSES):
            raise ArraysUnavailableError(
                "a cross's left field is neither the user's nor the context's"
            )
        self.user_left = np.column_stack([cross_left(a, values[a]) for a in user_left])
        self.cross_left_of = np.array([left_fields.index(a) for a, _ in CROSSES])

    def _ads(self, ads: pd.DataFrame, advertisers: pd.DataFrame) -> None:
        ids, order = _sorted(_ints(_keys(ads), "ad keys"), "ad")
        a = ads.iloc[order]
        self.ad_ids = ids
        imps, clicks = (a[c].to_numpy(np.float64) for c in ("imps", "clicks"))
        values = {c: _attr(a, c) for c in _AD_CATS if c != "ad_id"} | {"ad_id": ids}
        adv_ids, adv_order = _sorted(_ints(_keys(advertisers), "advertiser keys"), "advertiser")
        pos, found = _positions(adv_ids, values["advertiser_id"])
        adv = advertisers.iloc[adv_order]
        adv_imps, adv_clicks = (
            np.where(found, adv[c].to_numpy(np.int64)[pos], 0).astype(np.float64)
            for c in ("imps", "clicks")
        )
        age = np.clip(self.as_of_day - a["created_day"].to_numpy(np.float64), 0.0, None)
        self.bids = a["bid"].to_numpy(np.float64)
        dense = {
            "d_ad_imps": np.log1p(imps),
            "d_ad_ctr": smoothed_rate(clicks, imps, self.prior, PRIOR_STRENGTH["ad"]),
            "d_adv_imps": np.log1p(adv_imps),
            "d_adv_ctr": smoothed_rate(adv_clicks, adv_imps, self.prior, PRIOR_STRENGTH["adv"]),
            "d_ad_age_days": np.log1p(age),
            "d_bid": np.log1p(np.clip(self.bids, 0.0, None)),
        }
        self.ad_dense_cols = np.array([DENSE_INDEX[c] for c in dense])
        self.ad_dense = np.column_stack(list(dense.values()))
        self.ad_cat_cols = np.array([CAT_INDEX[f"c_{c}"] for c in _AD_CATS])
        self.ad_cat = np.column_stack([hash_values(c, values[c]) for c in _AD_CATS])
        self.cross_cols = np.array([CAT_INDEX[f"c_{x}_x_{y}"] for x, y in CROSSES])
        self.ad_right = np.column_stack([cross_right(x, y, values[y]) for x, y in CROSSES])
        codes, categories = pd.factorize(values["category"])
        self.ad_category = codes.astype(np.int64)  # -1: no category (never in a pair key)
        self.categories = pd.Index([str(c) for c in categories])
        self.n_categories = max(len(categories), 1)

    def _category_rows(self, right: pa.Array) -> np.ndarray:
        known = pa.array(list(self.categories), type=right.type)
        rows = pc.fill_null(pc.index_in(right, value_set=known), -1)
        return np.asarray(rows.to_numpy(zero_copy_only=False), dtype=np.int64)

    def _ad_rows(self, right: pa.Array) -> np.ndarray:
        pos, found = _positions(self.ad_ids, _ints(right, "user_ad keys"))
        return np.where(found, pos, -1)

    def _pairs(
        self, frame: pd.DataFrame, right_rows: Callable[[pa.Array], np.ndarray], width: int
    ) -> _Pairs:
        parts = pc.split_pattern(_keys(frame), ":", max_splits=1)
        if len(frame) and pc.min(pc.list_value_length(parts)).as_py() != 2:
            raise ArraysUnavailableError("pair keys must read 'left:right'")
        left, right = (pc.list_element(parts, i) for i in (0, 1))
        upos, ufound = _positions(self.user_ids, _ints(left, "pair keys"))
        rows = right_rows(right)
        keep = ufound & (rows >= 0)  # pairs of unknown users or ads are never asked for
        keys = upos[keep] * width + rows[keep]
        order = np.argsort(keys, kind="stable")
        imps, clicks = (
            frame[c].to_numpy(np.int64)[keep][order].astype(np.float64) for c in ("imps", "clicks")
        )
        return _Pairs(keys[order], imps, clicks)

    # --- request time --------------------------------------------------------------------------

    def _context_parts(self, hour: int, device: str) -> _Context:
        """The context's hashed categoricals (device, hour, position 0), its left parts of the
        crosses and its dense part (the hour on the circle), cached per (hour, device)."""
        key = (int(hour), str(device))
        parts = self._context.get(key)
        if parts is None:
            h = np.array([hour], np.int64)
            d = np.array([device], object)
            cat = np.concatenate(
                [hash_values("device", d), hash_values("hour", h), hash_values("position", 0 * h)]
            )
            left = np.concatenate([cross_left("device", d), cross_left("hour", h)])
            hours = h.astype(np.float64)
            circle = np.concatenate(
                [np.sin(2.0 * np.pi * hours / 24.0), np.cos(2.0 * np.pi * hours / 24.0)]
            )
            parts = (cat, left, circle)
            if len(self._context) < 1024:  # the contexts of a service are few
                self._context[key] = parts
        return parts

    def probe(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """The feature blocks of a request of the first user and the first ``n`` ads."""
        dense, cat, _ = self.gather(int(self.user_ids[0]), 12, "web", self.ad_ids[:n])
        return dense, cat

    def gather(
        self, user_id: int, hour: int, device: str, ad_ids: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The feature blocks of one request (``dense``, ``cat``: one row per candidate, in the
        order of :data:`~.features.DENSE_FEATURES` / :data:`~.features.CATEGORICAL_FEATURES`)
        and the candidates' bids. Unknown ids raise :class:`UnknownIdError`, the user first."""
        upos, ufound = _positions(self.user_ids, np.array([user_id], np.int64))
        if not ufound[0]:
            raise UnknownIdError("user", [int(user_id)])
        u = int(upos[0])
        arow, afound = _positions(self.ad_ids, ad_ids)
        if not afound.all():
            raise UnknownIdError("ad", np.unique(ad_ids[~afound]).tolist())
        n = len(ad_ids)
        dense = np.empty((n, len(DENSE_FEATURES)), np.float64)
        cat = np.empty((n, len(CATEGORICAL_FEATURES)), np.int64)
        D = DENSE_INDEX
        dense[:, self.user_dense_cols] = self.user_dense[u]
        dense[:, self.ad_dense_cols] = self.ad_dense[arow]
        category = self.ad_category[arow]
        composite = np.where(category >= 0, u * self.n_categories + category, -1)
        imps, clicks = self.ucat.lookup(composite)
        dense[:, D["d_ucat_imps"]] = np.log1p(imps)
        dense[:, D["d_ucat_ctr"]] = smoothed_rate(clicks, imps, self.prior, PRIOR_STRENGTH["ucat"])
        imps, clicks = self.uad.lookup(u * len(self.ad_ids) + arow)
        dense[:, D["d_uad_imps"]] = np.log1p(imps)
        dense[:, D["d_uad_clicks"]] = np.log1p(clicks)
        dense[:, D["d_position"]] = 0.0
        context, context_left, circle = self._context_parts(hour, device)
        dense[:, _CIRCLE_COLS] = circle
        cat[:, _CONTEXT_COLS] = context
        cat[:, self.user_cat_cols] = self.user_cat[u]
        cat[:, self.ad_cat_cols] = self.ad_cat[arow]
        left = np.concatenate([self.user_left[u], context_left])[self.cross_left_of]
        cat[:, self.cross_cols] = combine_cross(left[None, :], self.ad_right[arow])
        return dense, cat, self.bids[arow]


_Frames = dict[str, pd.DataFrame | None]
_ARRAYS: weakref.WeakKeyDictionary[FrameStore, tuple[_Frames, OnlineArrays | None]] = (
    weakref.WeakKeyDictionary()
)
_ARRAYS_LOCK = threading.Lock()


def _unchanged(store: FrameStore, frames: _Frames) -> bool:
    return all(store.frame(ns) is frame for ns, frame in frames.items())


def online_arrays(store: FrameStore) -> OnlineArrays | None:
    """The :class:`~.serving_arrays.OnlineArrays` of ``store``'s frames, built once per store
    (the scorers of one store share them) and again when its frames are replaced; None for
    tables they cannot serve (the frame path then serves them)."""
    entry = _ARRAYS.get(store)
    if entry is None or not _unchanged(store, entry[0]):
        with _ARRAYS_LOCK:
            entry = _ARRAYS.get(store)
            if entry is None or not _unchanged(store, entry[0]):
                frames = {ns: store.frame(ns) for ns in NAMESPACES}
                arrays: OnlineArrays | None = None
                try:
                    arrays = OnlineArrays(frames)
                except ArraysUnavailableError as exc:
                    log.info("online tables served through frames: %s", exc)
                entry = (frames, arrays)
                _ARRAYS[store] = entry
    return entry[1]
