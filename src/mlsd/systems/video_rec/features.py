"""Point-in-time features of the ranking stage (book ch. 6, "Feature engineering").

Every statistic of a (user, video) pair at day ``d`` is a sum over logged events of days strictly
before ``d`` (:class:`EventIndex`), so a training row never sees its own label or the future, and
serving asks the very same indexes at today's date: one code path, no training/serving skew.
Features are grouped as the chapter groups them: video (duration, age, popularity, CTR, watch
fraction), user (activity, tenure, demographics), user × video (category affinity, creator
affinity, similarity of the title to the titles the user watched) and context (the slot's
position, set to 0 at serving time so that position bias is learned but not served).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.features import hash_cross, hash_values
from mlsd.model_io import register_value_class

DAY_SPAN = 1 << 12
DAY_OFFSET = 1 << 10  # days may be negative (uploads before the log starts)


@register_value_class  # saved as data with the served recommender (mlsd.model_io)
class EventIndex:
    """Weighted events keyed by an int64 key; ``before(keys, days)`` sums those of earlier days."""

    def __init__(self, keys: np.ndarray, days: np.ndarray, weights: np.ndarray | None = None):
        comp = np.asarray(keys, np.int64) * DAY_SPAN + (np.asarray(days, np.int64) + DAY_OFFSET)
        order = np.argsort(comp, kind="stable")
        self.comp = comp[order]
        w = np.ones(len(comp)) if weights is None else np.asarray(weights)
        w = w[order]
        zero = np.zeros((1, *w.shape[1:]), dtype=np.float64 if w.ndim == 1 else np.float32)
        self.cum = np.concatenate([zero, np.cumsum(w, axis=0, dtype=zero.dtype)])

    def before(self, keys: np.ndarray, days: np.ndarray | int) -> np.ndarray:
        k = np.asarray(keys, np.int64) * DAY_SPAN
        d = np.broadcast_to(np.asarray(days, np.int64), k.shape)
        hi = np.searchsorted(self.comp, k + d + DAY_OFFSET, side="left")
        lo = np.searchsorted(self.comp, k, side="left")
        return np.asarray(self.cum[hi] - self.cum[lo])


@register_value_class
@dataclass
class Catalogue:
    """The videos the system knows, with their title embeddings (row index = video id)."""

    videos: pd.DataFrame
    title_emb: np.ndarray  # (n_videos, 384) float32, unit rows
    categories: list[str]

    def __post_init__(self) -> None:
        if not (self.videos["video_id"].to_numpy() == np.arange(len(self.videos))).all():
            raise ValueError("catalogue video ids must be 0..n-1 in order")
        index = {c: i for i, c in enumerate(self.categories)}
        self.category_idx = self.videos["category"].map(index).fillna(-1).to_numpy(np.int64)
        self.creator = self.videos["creator_id"].to_numpy(np.int64)
        self.duration = self.videos["duration_min"].to_numpy(np.float64)
        self.upload_day = self.videos["upload_day"].to_numpy(np.int64)
        self.category_name = self.videos["category"].to_numpy()
        self._projection: tuple[np.ndarray, np.ndarray] | None = None

    def title_projection(self, basis: np.ndarray) -> np.ndarray:
        """Every title embedding projected on ``basis`` ``(n_videos, dim)``, computed once per
        basis: a request gathers rows instead of multiplying 384-wide embeddings again."""
        if self._projection is None or self._projection[0] is not basis:
            proj = np.asarray(self.title_emb, np.float32) @ np.asarray(basis, np.float32)
            self._projection = (basis, proj)
        return self._projection[1]

    @property
    def n_creators(self) -> int:
        return int(self.creator.max()) + 1 if len(self.creator) else 1


CONTENT_DIM = 32


def content_basis(title_emb: np.ndarray, dim: int = CONTENT_DIM) -> np.ndarray:
    """The top ``dim`` right singular vectors of the catalogue's title embeddings.

    Users' title histories are summed in this space (32 floats per click instead of 384), which
    keeps the point-in-time index small; the basis is fitted once and kept with the index so that
    training and serving project alike.
    """
    x = np.asarray(title_emb, dtype=np.float32)
    if len(x) == 0:
        return np.eye(x.shape[1], dim, dtype=np.float32)
    _, _, vt = np.linalg.svd(x[:: max(1, len(x) // 20_000)], full_matrices=False)
    basis = vt[:dim].T.astype(np.float32)
    if basis.shape[1] < dim:
        basis = np.pad(basis, ((0, 0), (0, dim - basis.shape[1])))
    return basis


@register_value_class
@dataclass
class UserSide:
    """Per-user point-in-time indexes, from the log or from an inline watch history."""

    clicks: EventIndex
    imps: EventIndex
    cat: EventIndex
    creator: EventIndex
    content: EventIndex
    n_categories: int
    n_creators: int
    # clicked videos sorted by (user, day): the watch history of the two-tower user tower
    hist_key: np.ndarray
    hist_video: np.ndarray
    content_basis: np.ndarray  # (384, CONTENT_DIM): title embeddings projected for d_content_sim

    @classmethod
    def build(
        cls,
        cat: Catalogue,
        user: np.ndarray,
        video: np.ndarray,
        day: np.ndarray,
        click: np.ndarray,
        n_creators: int,
        basis: np.ndarray | None = None,
    ) -> UserSide:
        """The indexes of a log; ``basis`` reuses a fitted content basis (serving an inline
        user must project titles like training did), else one is fitted on ``cat``."""
        c = click.astype(bool)
        cu, cv, cd = user[c], video[c], day[c]
        n_cat = len(cat.categories)
        comp = cu.astype(np.int64) * DAY_SPAN + (cd.astype(np.int64) + DAY_OFFSET)
        order = np.argsort(comp, kind="stable")
        basis = content_basis(cat.title_emb) if basis is None else basis
        return cls(
            clicks=EventIndex(cu, cd),
            imps=EventIndex(user, day),
            cat=EventIndex(cu * n_cat + cat.category_idx[cv], cd),
            creator=EventIndex(cu * n_creators + cat.creator[cv], cd),
            content=EventIndex(cu, cd, cat.title_emb[cv] @ basis),
            n_categories=n_cat,
            n_creators=n_creators,
            hist_key=comp[order],
            hist_video=cv[order],
            content_basis=basis,
        )

    def history(self, users: np.ndarray, days: np.ndarray | int, length: int) -> np.ndarray:
        """The last ``length`` videos each user clicked before ``days``: ``(n, length)``, -1 pad."""
        k = np.asarray(users, np.int64) * DAY_SPAN
        if not len(self.hist_video):  # nobody clicked anything yet (a brand-new inline user)
            return np.full((len(k), length), -1, dtype=np.int64)
        d = np.broadcast_to(np.asarray(days, np.int64), k.shape)
        hi = np.searchsorted(self.hist_key, k + d + DAY_OFFSET, side="left")
        lo = np.searchsorted(self.hist_key, k, side="left")
        idx = hi[:, None] - length + np.arange(length)[None, :]
        ok = idx >= lo[:, None]
        return np.where(ok, self.hist_video[np.clip(idx, 0, len(self.hist_video) - 1)], -1)


@register_value_class
@dataclass
class VideoSide:
    """Per-video point-in-time indexes: impressions, clicks, watch fractions."""

    clicks: EventIndex
    imps: EventIndex
    watch: EventIndex

    @classmethod
    def build(
        cls, video: np.ndarray, day: np.ndarray, click: np.ndarray, watch_frac: np.ndarray
    ) -> VideoSide:
        c = click.astype(bool)
        return cls(
            EventIndex(video[c], day[c]),
            EventIndex(video, day),
            EventIndex(video[c], day[c], watch_frac[c]),
        )


@dataclass
class Demographics:
    """The demographic columns of the users being scored, one value per row."""

    age_bucket: np.ndarray
    country: np.ndarray
    language: np.ndarray
    signup_day: np.ndarray

    @classmethod
    def of(cls, users: pd.DataFrame, user_ids: np.ndarray) -> Demographics:
        u = users.iloc[np.asarray(user_ids)]
        return cls(*(u[c].to_numpy() for c in ("age_bucket", "country", "language", "signup_day")))


def _smooth(num: np.ndarray, den: np.ndarray, prior: float, strength: float) -> np.ndarray:
    return (num + prior * strength) / (den + strength)


FEATURES = (
    "d_position",
    "d_log_duration",
    "d_video_age",
    "d_video_clicks",
    "d_video_imps",
    "d_video_ctr",
    "d_video_watch_frac",
    "d_video_recent_clicks",
    "d_user_clicks",
    "d_user_imps",
    "d_user_ctr",
    "d_user_tenure",
    "d_cat_affinity",
    "d_creator_affinity",
    "d_content_sim",
    "c_category",
    "c_age_bucket",
    "c_country",
    "c_language",
    "c_age_bucket_x_category",
)


def ranking_frame(
    cat: Catalogue,
    us: UserSide,
    vs: VideoSide,
    demo: Demographics,
    user_keys: np.ndarray,
    video_ids: np.ndarray,
    days: np.ndarray | int,
    positions: np.ndarray | int = 0,
) -> pd.DataFrame:
    """The feature frame of rows (user, video, day, position); ``demo`` is aligned with rows."""
    v = np.asarray(video_ids, np.int64)
    u = np.asarray(user_keys, np.int64)
    d = np.broadcast_to(np.asarray(days, np.int64), v.shape)
    v_clicks, v_imps = vs.clicks.before(v, d), vs.imps.before(v, d)
    u_clicks, u_imps = us.clicks.before(u, d), us.imps.before(u, d)
    cat_idx = cat.category_idx[v]
    cat_n = us.cat.before(u * us.n_categories + cat_idx, d)
    creator_n = us.creator.before(u * us.n_creators + cat.creator[v], d)
    content = us.content.before(u, d)  # (n, CONTENT_DIM) sums of projected titles
    item = cat.title_projection(us.content_basis)[v]  # (n, CONTENT_DIM)
    norm = np.linalg.norm(content, axis=1) * np.linalg.norm(item, axis=1)
    sim = np.einsum("nd,nd->n", content, item) / np.maximum(norm, 1e-9)
    category = cat.category_name[v]
    frame = {
        "d_position": np.broadcast_to(np.asarray(positions, np.float64), v.shape).copy(),
        "d_log_duration": np.log(cat.duration[v]),
        "d_video_age": np.maximum(d - cat.upload_day[v], 0).astype(np.float64),
        "d_video_clicks": np.log1p(v_clicks),
        "d_video_imps": np.log1p(v_imps),
        "d_video_ctr": _smooth(v_clicks, v_imps, 0.04, 50.0),
        "d_video_watch_frac": _smooth(vs.watch.before(v, d), v_clicks, 0.5, 5.0),
        "d_video_recent_clicks": np.log1p(v_clicks - vs.clicks.before(v, d - 3)),
        "d_user_clicks": np.log1p(u_clicks),
        "d_user_imps": np.log1p(u_imps),
        "d_user_ctr": _smooth(u_clicks, u_imps, 0.04, 20.0),
        "d_user_tenure": (d - demo.signup_day.astype(np.int64)).astype(np.float64),
        "d_cat_affinity": _smooth(cat_n, u_clicks, 1.0 / us.n_categories, 1.0),
        "d_creator_affinity": np.log1p(creator_n),
        "d_content_sim": np.where(norm > 0, sim, 0.0),
        "c_category": hash_values("category", category),
        "c_age_bucket": hash_values("age_bucket", demo.age_bucket),
        "c_country": hash_values("country", demo.country),
        "c_language": hash_values("language", demo.language),
        "c_age_bucket_x_category": hash_cross("age_bucket", demo.age_bucket, "category", category),
    }
    return pd.DataFrame(frame, columns=list(FEATURES))
