"""The simulated platform: authors, posts (text, image, engagement, reports), and the oracle.

Each post's content may carry a signal of a harm class, in its text, its image, both, or as a
meme (a weak coded text and a weak glyph, harmful only together). Riskier authors (new accounts,
past violations) carry signals more often. The content's total strength ``S_c`` for class ``c``
gives the world's true probability that the policy team judges the post harmful,
``p_c = sigmoid(3 (S_c - 1.5))``; the label is drawn from it, so even the oracle (which knows
``p_c``) is not perfect: borderline posts are judged both ways. Counter-speech quotes an explicit
phrase and is benign.

Engagement unfolds over time: a post's views arrive as ``V (1 - exp(-h / tau))`` over hours
``h``; harmful posts are reported per view at their class's rate, benign posts rarely (noise).
What a platform could log at the first hour (views, shares, comments, reports) is a feature; the
rest (``views_total``, ``report_rate``, ``p_*``, the message's kind) stays in the world for the
online experiment and the oracle.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsd.rng import rng
from mlsd.systems.harmful_content import CLASSES
from mlsd.systems.harmful_content.world_config import HarmWorldConfig, signal_rates
from mlsd.systems.harmful_content.world_images import render_images
from mlsd.systems.harmful_content.world_messages import message_pool
from mlsd.world import Scale

DAY_S = 86_400
TAU_H = 10.0  # views arrive as 1 - exp(-h / TAU_H)
DECISION_H = 1.0  # the classifier runs with the first hour's engagement
REPORT_RATE = {"hate": 0.015, "violence": 0.015, "sexual": 0.010, "spam": 0.020, "self_harm": 0.004}
NOISE_REPORT_RATE = 0.0005
CHANNELS = ("text", "image", "both", "meme")
CHANNEL_P = (0.45, 0.20, 0.20, 0.15)
C = len(CLASSES)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def harm_probability(strength: np.ndarray) -> np.ndarray:
    """The world's true P(judged harmful | content strength)."""
    return np.asarray(sigmoid(3.0 * (np.asarray(strength) - 1.5)))


class HarmWorld:
    """Deterministic by ``(scale, seed)``; ``posts`` holds every post of every day."""

    def __init__(self, scale: Scale, seed: int, config: HarmWorldConfig | None = None) -> None:
        self.scale = scale
        self.seed = seed
        self.config = config or HarmWorldConfig.for_scale(scale)
        self.messages = message_pool(self.config, seed)
        self.authors = self._authors()
        self.posts = self._posts()

    # ---- authors ------------------------------------------------------------------------
    def _authors(self) -> pd.DataFrame:
        cfg = self.config
        r = rng(self.seed, "harmful-content/authors")
        n = cfg.n_authors
        signup = -r.exponential(400.0, n).astype(np.int64) + r.integers(0, cfg.total_days, n)
        risk = r.normal(0.0, 1.0, n)
        past = r.poisson(np.exp(risk - 1.5) * 2.0)
        followers = np.round(np.exp(r.normal(4.0, 1.5, n))).astype(np.int64)
        return pd.DataFrame(
            {
                "author_id": np.arange(n, dtype=np.int64),
                "signup_day": signup,
                "followers": followers,
                "past_violations": past.astype(np.int64),
                "activity": np.exp(r.normal(0.0, 1.0, n)),
                "risk": risk,  # hidden
            }
        )

    # ---- posts --------------------------------------------------------------------------
    def _posts(self) -> pd.DataFrame:
        cfg, seed = self.config, self.seed
        r = rng(seed, "harmful-content/posts")
        n = cfg.n_posts
        days_total = cfg.total_days
        per_day = n / days_total
        ts = np.sort(r.uniform(0, days_total * DAY_S, n)).astype(np.int64)
        day = (ts // DAY_S).astype(np.int64)
        a = self.authors
        act = a["activity"].to_numpy()
        author = r.choice(len(a), n, p=act / act.sum())
        age = day - a["signup_day"].to_numpy()[author]
        risk = a["risk"].to_numpy()[author] + (age < 30) * 1.0
        lift = np.exp(0.7 * risk - 0.5)

        rates = signal_rates(cfg)
        signal = np.stack([r.random(n) < rates[c] * lift for c in CLASSES], axis=1)
        text_cls = np.full(n, -1)
        img_cls = np.full(n, -1)
        img_s = np.zeros(n)
        meme = np.zeros((n, C), bool)
        channel = np.full(n, "", dtype=object)
        for c in r.permutation(C):
            for i in np.flatnonzero(signal[:, c]):
                ch = CHANNELS[int(r.choice(len(CHANNELS), p=CHANNEL_P))]
                if ch in ("text", "both", "meme") and text_cls[i] >= 0:
                    continue
                if ch in ("image", "both", "meme") and img_cls[i] >= 0:
                    continue
                if ch != "image":
                    text_cls[i] = c
                if ch != "text":
                    img_cls[i] = c
                    img_s[i] = 0.3 if ch == "meme" else r.uniform(0.2, 3.0)
                meme[i, c] = ch == "meme"
                channel[i] = ch
        msg = self._choose_messages(r, day, text_cls, meme)
        m = self.messages
        kind = m["kind"].to_numpy()[msg]
        strength = np.full((n, C), -2.5)
        rows = np.flatnonzero(text_cls >= 0)
        strength[rows, text_cls[rows]] = m["strength"].to_numpy()[msg[rows]]
        rows = np.flatnonzero(img_cls >= 0)
        cur = strength[rows, img_cls[rows]]
        strength[rows, img_cls[rows]] = np.where(cur < -2, 0.0, cur) + img_s[rows]
        strength += 2.2 * meme
        p = harm_probability(strength)
        y = (r.random((n, C)) < p).astype(np.int8)
        has_image = (img_cls >= 0) | (r.random(n) < cfg.image_share)

        harmful = y.any(axis=1)
        followers = a["followers"].to_numpy()[author]
        views_total = np.exp(r.normal(np.log(20 + 0.3 * followers), 1.0)) * (1 + 0.5 * harmful)
        rate = np.full(n, NOISE_REPORT_RATE)
        rate[kind == "counter"] = 4 * NOISE_REPORT_RATE
        for c, name in enumerate(CLASSES):
            rate = np.where(y[:, c] == 1, np.maximum(rate, REPORT_RATE[name]), rate)
        share_1h = 1 - np.exp(-DECISION_H / TAU_H)
        views_1h = r.poisson(views_total * share_1h)
        reports_1h = r.poisson(views_1h * rate)
        reports_total = reports_1h + r.poisson(views_total * (1 - share_1h) * rate)
        first = np.argmax(y, axis=1)
        true_reason = np.where(harmful, first, r.integers(0, C, n))
        reason = np.where(r.random(n) < 0.7, true_reason, r.integers(0, C, n))
        frame = pd.DataFrame(
            {
                "post_id": np.arange(n, dtype=np.int64),
                "ts": ts,
                "day": day,
                "author_id": author.astype(np.int64),
                "text": m["text"].to_numpy()[msg],
                "has_image": has_image,
                "account_age_days": np.maximum(age, 0).astype(np.int64),
                "followers": followers,
                "past_violations": a["past_violations"].to_numpy()[author],
                "views_1h": views_1h.astype(np.int64),
                "shares_1h": r.binomial(views_1h, 0.02 + 0.03 * harmful).astype(np.int64),
                "comments_1h": r.binomial(views_1h, 0.03 + 0.03 * harmful).astype(np.int64),
                "reports_1h": reports_1h.astype(np.int64),
                # hidden below: the world's own state
                "message_id": msg.astype(np.int64),
                "kind": kind,
                "obfuscated": m["obfuscated"].to_numpy()[msg],
                "channel": channel,
                "img_cls": img_cls.astype(np.int64),
                "img_strength": img_s,
                "views_total": views_total,
                "report_rate": rate,
                "reports_total": reports_total.astype(np.int64),
                "report_reason": reason.astype(np.int64),
            }
        )
        for c, name in enumerate(CLASSES):
            frame[f"p_{name}"] = p[:, c]
            frame[f"y_{name}"] = y[:, c]
        self.posts_per_day = per_day
        return frame

    def _choose_messages(
        self, r: np.random.Generator, day: np.ndarray, text_cls: np.ndarray, meme: np.ndarray
    ) -> np.ndarray:
        m = self.messages
        cfg = self.config
        n = len(day)
        benign = m.index[m["cls"] < 0].to_numpy()
        msg = benign[r.integers(0, len(benign), n)]
        drift_share = np.clip((day - cfg.n_days + 1) / max(cfg.drift_days, 1), 0, 0.8)
        for c in range(C):
            rows = np.flatnonzero(text_cls == c)
            if not len(rows):
                continue
            mc = m[m["cls"] == c]
            memes = mc.index[mc["kind"] == "meme"].to_numpy()
            drift = mc.index[mc["kind"] == "drift"].to_numpy()
            normal = mc.index[mc["kind"].isin(["explicit", "coded"])].to_numpy()
            pick = normal[r.integers(0, len(normal), len(rows))]
            use_drift = r.random(len(rows)) < drift_share[rows]
            pick = np.where(use_drift, drift[r.integers(0, len(drift), len(rows))], pick)
            is_meme = meme[rows, c]
            pick = np.where(is_meme, memes[r.integers(0, len(memes), len(rows))], pick)
            msg[rows] = pick
        return msg

    # ---- what the models see ----------------------------------------------------------------
    def images(self, post_ids: np.ndarray) -> np.ndarray:
        """The images of ``post_ids`` (blank for posts without one)."""
        ids = np.asarray(post_ids, dtype=np.int64)
        p = self.posts
        return render_images(
            p["img_cls"].to_numpy()[ids],
            p["img_strength"].to_numpy()[ids],
            ids,
            self.seed,
            self.config.image_size,
        )

    def labels(self, rows: np.ndarray | None = None) -> np.ndarray:
        cols = [f"y_{c}" for c in CLASSES]
        y = self.posts[cols].to_numpy(np.int64)
        return y if rows is None else y[rows]

    def oracle(self, rows: np.ndarray | None = None) -> np.ndarray:
        cols = [f"p_{c}" for c in CLASSES]
        p = self.posts[cols].to_numpy(np.float64)
        return p if rows is None else p[rows]
