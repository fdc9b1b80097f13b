"""The simulated video platform: a catalogue with latent topics, its text and frames, the
query model, graded relevance (the oracle) and the users' clicks on a result page.

* **Videos.** Each has a primary topic and 1-3 of its concepts (latent), sometimes a second
  topic with one concept. Its title, description and tags say those concepts with random
  synonyms and a few misspellings; ``poor_text_share`` of the videos have a generic title and
  nothing else, ``misleading_share`` the text of another topic. Frames are rendered from the
  same latent content: each topic has a visual pattern and each concept a motif, mixed, moving
  from frame to frame, plus noise: the visual signal does not depend on the text's quality.
  Some videos are re-uploads of an earlier one (same frames, same text), some are unsafe (the
  platform's safety classifier flags most of them). New videos arrive every day.
* **Queries.** Intents (a topic and 1-2 of its concepts) with Zipf popularity: head intents
  are searched often, tail intents rarely. A query says its concepts with random synonyms,
  sometimes the topic and a filler word, and ``typo_share`` of the queries misspell a word.
* **Relevance** of every (intent, video) pair, graded 0-3 from the latent content: 3 the
  video's primary topic covers every concept of the intent, 2 some of them, 1 the topic only
  (or the second topic's concept), 0 otherwise; unsafe videos are 0. That is the oracle.
* **Behaviour.** A user examines position ``p`` of the result page with probability
  ``1 / (1 + p) ** 0.8`` and clicks an examined video with a probability rising with its
  grade; watch time is a share of the duration rising with the grade; the time to the first
  click counts the results scanned before it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from mlsd.rng import rng, seed_sequence
from mlsd.systems.video_search.world_config import (
    EMERGING,
    FILLER,
    POOR_TITLES,
    TOPICS,
    VideoSearchConfig,
)
from mlsd.world import Scale

CONCEPTS = 6  # per topic
CLICK_BY_GRADE = np.array([0.02, 0.12, 0.40, 0.65])
WATCH_SHARE_BY_GRADE = np.array([0.08, 0.25, 0.5, 0.7])
SCAN_SECONDS = 1.5  # reading one result before deciding


def topic_table(n_topics: int) -> list[tuple[str, tuple[tuple[str, ...], ...]]]:
    """``(name, concepts)`` of the world's topics, the emerging one last."""
    names = list(TOPICS)[:n_topics]
    out = [(n, tuple(tuple(c.split("/")) for c in TOPICS[n])) for n in names]
    out.append((EMERGING[0], tuple(tuple(c.split("/")) for c in EMERGING[1])))
    return out


def misspell(word: str, gen: np.random.Generator) -> str:
    """Drop, double or swap one inner letter (a typo a user makes)."""
    if len(word) < 4:
        return word
    i = int(gen.integers(1, len(word) - 2))
    kind = int(gen.integers(0, 3))
    if kind == 0:
        return word[:i] + word[i + 1 :]
    if kind == 1:
        return word[:i] + word[i] + word[i:]
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


@dataclass(frozen=True)
class Responses:
    """What users did with result pages: clicks and watch seconds ``(n, k)``, the seconds to
    the first click (``nan`` without one)."""

    clicks: np.ndarray
    watch_s: np.ndarray
    first_click_s: np.ndarray


class VideoSearchWorld:
    """The catalogue (``videos``), the query model (``intents``) and the users' behaviour."""

    def __init__(self, scale: Scale | str, seed: int, config: VideoSearchConfig | None = None):
        self.scale = Scale(scale)
        self.seed = seed
        self.config = cfg = config or VideoSearchConfig.for_scale(self.scale)
        if cfg.trend_day is None:
            self.config = cfg = cfg.with_(trend_day=cfg.n_days)
        self.topics = topic_table(cfg.n_topics)
        self._patterns()
        self.videos = self._catalogue()
        self.intents = self._intents()

    # ---- the catalogue -------------------------------------------------------------------
    def _catalogue(self) -> pd.DataFrame:
        cfg = self.config
        gen = rng(self.seed, "video-search/videos")
        n0, per_day = cfg.n_videos, cfg.new_videos_per_day
        days = cfg.n_days + cfg.monitor_days
        upload = np.concatenate(
            [np.zeros(n0, np.int64), np.repeat(np.arange(1, days + 1), per_day)]
        )
        n = len(upload)
        topic = gen.integers(0, cfg.n_topics, n)
        trend = cfg.trend_day if cfg.trend_day is not None else cfg.n_days
        emerging = (upload >= trend) & (gen.random(n) < 0.3)
        topic[emerging] = cfg.n_topics
        k = gen.choice([1, 2, 3], n, p=[0.35, 0.45, 0.2])
        mask = np.array(
            [sum(1 << int(c) for c in gen.choice(CONCEPTS, ki, replace=False)) for ki in k]
        )
        has2 = gen.random(n) < 0.35
        topic2 = np.where(has2, (topic + gen.integers(1, cfg.n_topics, n)) % cfg.n_topics, -1)
        c2 = np.where(has2, gen.integers(0, CONCEPTS, n), -1)
        u = gen.random(n)
        quality = np.where(
            u < cfg.poor_text_share,
            "poor",
            np.where(u < cfg.poor_text_share + cfg.misleading_share, "misleading", "good"),
        )
        dup = np.full(n, -1, np.int64)
        is_dup = (gen.random(n) < cfg.duplicate_share) & (np.arange(n) > 10)
        for i in np.flatnonzero(is_dup):
            dup[i] = int(gen.integers(0, i))
        for i in np.flatnonzero(dup >= 0):  # a re-upload is its original, uploaded again
            o = dup[i]
            topic[i], mask[i], topic2[i], c2[i], quality[i] = (
                topic[o],
                mask[o],
                topic2[o],
                c2[o],
                quality[o],
            )
        unsafe = gen.random(n) < cfg.unsafe_share
        flagged = np.where(unsafe, gen.random(n) < 0.9, gen.random(n) < 0.005)
        texts = [
            self._text(
                gen, int(topic[i]), int(mask[i]), int(topic2[i]), int(c2[i]), str(quality[i])
            )
            for i in range(n)
        ]
        for i in np.flatnonzero(dup >= 0):
            texts[i] = texts[int(dup[i])]
        return pd.DataFrame(
            {
                "video_id": np.arange(n, dtype=np.int64),
                "upload_day": upload,
                "title": [t[0] for t in texts],
                "description": [t[1] for t in texts],
                "tags": [t[2] for t in texts],
                "duration_s": np.round(gen.lognormal(5.5, 0.8, n)).astype(np.int64) + 15,
                "popularity": np.round(gen.lognormal(3.0, 1.5, n)).astype(np.int64),
                "flagged": flagged,
                # the world's own columns: never features, never served
                "topic": topic,
                "mask": mask,
                "topic2": topic2,
                "c2": c2,
                "text_quality": quality,
                "unsafe": unsafe,
                "duplicate_of": dup,
            }
        )

    def _say(self, gen: np.random.Generator, topic: int, concept: int, typo: float) -> str:
        words = self.topics[topic][1][concept]
        w = str(words[int(gen.integers(0, len(words)))])
        return misspell(w, gen) if gen.random() < typo else w

    def _text(
        self, gen: np.random.Generator, topic: int, mask: int, topic2: int, c2: int, quality: str
    ) -> tuple[str, str, str]:
        if quality == "poor":
            title = str(POOR_TITLES[int(gen.integers(0, len(POOR_TITLES)))])
            return f"{title} {int(gen.integers(1, 999))}", "", ""
        if quality == "misleading":
            other = int(gen.integers(0, self.config.n_topics))
            topic, mask, topic2 = other, 1 << int(gen.integers(0, CONCEPTS)), -1
        concepts = [c for c in range(CONCEPTS) if mask >> c & 1]
        fill = [str(f) for f in gen.choice(FILLER, 2, replace=False)]
        head = [self._say(gen, topic, c, 0.05) for c in concepts[:2]]
        if gen.random() < 0.5:
            head.append(self._say(gen, topic, 0, 0.05))
        title = " ".join([fill[0], *head, fill[1]] if gen.random() < 0.5 else [*head, fill[1]])
        body = [self._say(gen, topic, c, 0.05) for c in concepts for _ in range(2)]
        body.append(self._say(gen, topic, 0, 0.05))
        if topic2 >= 0:
            body.append(self._say(gen, topic2, c2, 0.05))
        body += [str(f) for f in gen.choice(FILLER, 4)]
        gen.shuffle(body)
        names = self.topics[topic][1]
        tags = [names[0][0], *(names[c][0] for c in concepts)]
        return title, " ".join(body), ",".join(dict.fromkeys(tags))

    # ---- frames ----------------------------------------------------------------------------
    def _patterns(self) -> None:
        s = self.config.frame_size
        gen = rng(self.seed, "video-search/patterns")
        yy, xx = np.meshgrid(np.arange(s), np.arange(s), indexing="ij")
        protos = []
        for _ in range(len(self.topics)):
            p = np.zeros((3, s, s))
            for _ in range(3):
                angle, freq = gen.uniform(0, np.pi), gen.uniform(0.3, 1.2)
                wave = np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + gen.uniform(0, 6))
                p += gen.normal(0, 1, 3)[:, None, None] * wave
            protos.append(p / 2)
        motifs = []
        for _ in range(len(self.topics) * CONCEPTS):
            cy, cx = gen.uniform(2, s - 2, 2)
            blob = np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * gen.uniform(1.5, 3) ** 2))
            motifs.append(gen.normal(0, 1.2, 3)[:, None, None] * blob)
        self.protos = np.stack(protos).astype(np.float32)
        self.motifs = np.stack(motifs).astype(np.float32)

    def frames(self, video_ids: np.ndarray) -> np.ndarray:
        """``(n, frames, 3, size, size)`` float32 frames of the videos, deterministic by id."""
        cfg, v = self.config, self.videos
        ids = np.asarray(video_ids, dtype=np.int64)
        out = np.empty((len(ids), cfg.frames, 3, cfg.frame_size, cfg.frame_size), np.float32)
        root = seed_sequence(self.seed, "video-search/frames")
        topic, mask = v["topic"].to_numpy(), v["mask"].to_numpy()
        topic2, c2, dup = v["topic2"].to_numpy(), v["c2"].to_numpy(), v["duplicate_of"].to_numpy()
        for j, i in enumerate(ids):
            src = int(dup[i]) if dup[i] >= 0 else int(i)  # a re-upload shows its original
            gen = np.random.default_rng(np.random.SeedSequence(root.entropy, spawn_key=(src,)))
            base = self.protos[topic[i]].copy()
            for c in range(CONCEPTS):
                if mask[i] >> c & 1:
                    base += self.motifs[topic[i] * CONCEPTS + c]
            if topic2[i] >= 0:
                base += (
                    0.5 * self.protos[topic2[i]] + 0.5 * self.motifs[topic2[i] * CONCEPTS + c2[i]]
                )
            base += gen.normal(0, 0.6, base.shape).astype(np.float32)  # the video's own look
            shift = int(gen.integers(0, 3))
            for f in range(cfg.frames):
                moved = np.roll(base, f * shift, axis=2)
                out[j, f] = moved + gen.normal(0, 0.3, base.shape)
        return out

    # ---- queries ---------------------------------------------------------------------------
    def _intents(self) -> pd.DataFrame:
        cfg = self.config
        gen = rng(self.seed, "video-search/intents")
        n = cfg.n_intents
        topic = gen.integers(0, cfg.n_topics, n)
        two = gen.random(n) < 0.4
        mask = np.array(
            [
                sum(1 << int(c) for c in gen.choice(CONCEPTS, 2 if t else 1, replace=False))
                for t in two
            ]
        )
        weight = 1.0 / np.arange(1, n + 1) ** 1.1
        # the emerging topic's intents, searched only from the trend day
        em = np.arange(CONCEPTS)
        return pd.DataFrame(
            {
                "intent_id": np.arange(n + CONCEPTS, dtype=np.int64),
                "topic": np.concatenate([topic, np.full(CONCEPTS, cfg.n_topics)]),
                "mask": np.concatenate([mask, 1 << em]),
                "weight": np.concatenate([weight / weight.sum(), np.full(CONCEPTS, 0.0)]),
                "tail": np.concatenate([np.arange(n) >= n // 10, np.zeros(CONCEPTS, bool)]),
                "emerging": np.concatenate([np.zeros(n, bool), np.ones(CONCEPTS, bool)]),
            }
        )

    def queries(self, day: int, n: int, purpose: str = "log") -> pd.DataFrame:
        """``n`` searches on ``day``: who, which intent, the text typed, and whether it has a
        typo. From the trend day on, a growing share asks about the emerging topic."""
        cfg, it = self.config, self.intents
        gen = rng(self.seed, f"video-search/queries/{purpose}/{day}")
        p = it["weight"].to_numpy().copy()
        trend = cfg.trend_day if cfg.trend_day is not None else cfg.n_days
        if day >= trend:
            share = min(0.3, 0.1 * (day - trend + 1))
            em = it["emerging"].to_numpy()
            p = np.where(em, share / em.sum(), p * (1 - share))
        intent = gen.choice(len(it), n, p=p / p.sum())
        typo = gen.random(n) < cfg.typo_share
        texts = [self.query_text(gen, int(i), bool(t)) for i, t in zip(intent, typo, strict=True)]
        return pd.DataFrame(
            {
                "user_id": gen.integers(0, cfg.n_users, n).astype(np.int64),
                "day": np.full(n, day, np.int64),
                "intent_id": intent.astype(np.int64),
                "text": texts,
                "typo": typo,
                "tail": it["tail"].to_numpy()[intent],
            }
        )

    def query_text(self, gen: np.random.Generator, intent: int, typo: bool) -> str:
        t = int(self.intents["topic"].to_numpy()[intent])
        mask = int(self.intents["mask"].to_numpy()[intent])
        words = [self._say(gen, t, c, 0.0) for c in range(CONCEPTS) if mask >> c & 1]
        if not mask & 1 and gen.random() < 0.3:
            words.append(self._say(gen, t, 0, 0.0))
        if gen.random() < 0.2:
            words.insert(0, str(FILLER[int(gen.integers(0, len(FILLER)))]))
        if typo:
            longest = max(range(len(words)), key=lambda i: len(words[i]))
            words[longest] = misspell(words[longest], gen)
        return " ".join(words)

    # ---- the oracle and behaviour --------------------------------------------------------
    def _attrs(self) -> tuple[np.ndarray, ...]:
        v = self.videos
        cols = ("topic", "mask", "topic2", "c2", "unsafe")
        return tuple(v[c].to_numpy() for c in cols)

    def grades(self, intent: int, video_ids: np.ndarray | None = None) -> np.ndarray:
        """Graded relevance 0-3 of ``intent`` for the videos (all of them by default)."""
        ids = np.arange(len(self.videos)) if video_ids is None else np.asarray(video_ids)
        return self.pair_grades(np.array([intent]), ids[None, :])[0]

    def pair_grades(self, intents: np.ndarray, video_ids: np.ndarray) -> np.ndarray:
        """Grades of ``(n,)`` intents for ``(n, k)`` video ids, row by row (-1 ids grade 0)."""
        topic, mask, topic2, c2, unsafe = (a[np.maximum(video_ids, 0)] for a in self._attrs())
        it = self.intents
        t = it["topic"].to_numpy()[intents][:, None]
        q = it["mask"].to_numpy()[intents][:, None]
        same = topic == t
        g = np.where(same & (mask & q == q), 3, np.where(same & (mask & q != 0), 2, same * 1))
        second = (topic2 == t) & ((q >> np.maximum(c2, 0)) & 1 == 1)
        g = np.where((g == 0) & second, 1, g)
        return np.where(unsafe | (video_ids < 0), 0, g).astype(np.int8)

    def propensity(self, users: np.ndarray) -> np.ndarray:
        """Each user's click propensity (some users click much more than others)."""
        p = rng(self.seed, "video-search/user-propensity").lognormal(0, 0.5, self.config.n_users)
        return np.asarray(p / p.mean())[np.asarray(users)]

    def respond(
        self,
        intents: np.ndarray,
        pages: np.ndarray,
        gen: np.random.Generator,
        users: np.ndarray | None = None,
    ) -> Responses:
        """Users' clicks on result pages ``(n, k)`` of video ids (-1 = an empty slot)."""
        pages = np.asarray(pages, dtype=np.int64)
        n, k = pages.shape
        g = self.pair_grades(np.asarray(intents), pages).astype(np.int64)
        p = CLICK_BY_GRADE[g]
        if users is not None:
            p = np.minimum(p * self.propensity(users)[:, None], 0.95)
        examine = gen.random((n, k)) < 1.0 / (1.0 + np.arange(k)) ** 0.8
        clicks = examine & (gen.random((n, k)) < p) & (pages >= 0)
        dur = self.videos["duration_s"].to_numpy()[np.maximum(pages, 0)]
        share = np.clip(WATCH_SHARE_BY_GRADE[g] + gen.normal(0, 0.1, (n, k)), 0.02, 1.0)
        watch = np.where(clicks, dur * share, 0.0)
        first = np.where(clicks.any(axis=1), SCAN_SECONDS * (clicks.argmax(axis=1) + 1), np.nan)
        return Responses(clicks, watch, first)

    # ---- the logs --------------------------------------------------------------------------
    def log(self, policy: Policy, days: range, page: int = 10) -> Log:
        """The searches of ``days`` ranked by the logging ``policy`` (the platform's text search
        before this project) and what the users did with each result page."""
        searches, imps = [], []
        start = 0
        for day in days:
            q = self.queries(day, self.config.queries_per_day)
            pages = policy(q["text"].tolist(), day, page)
            res = self.respond(
                q["intent_id"].to_numpy(),
                pages,
                rng(self.seed, f"video-search/clicks/{day}"),
                q["user_id"].to_numpy(),
            )
            sid = np.arange(start, start + len(q))
            searches.append(q.assign(search_id=sid))
            imps.append(
                pd.DataFrame(
                    {
                        "search_id": np.repeat(sid, page),
                        "position": np.tile(np.arange(page), len(q)),
                        "video_id": pages.ravel(),
                        "click": res.clicks.ravel(),
                        "watch_s": res.watch_s.ravel(),
                    }
                )
            )
            start += len(q)
        return Log(pd.concat(searches, ignore_index=True), pd.concat(imps, ignore_index=True))


Policy = Callable[[list[str], int, int], np.ndarray]  # (texts, day, k) -> (n, k) ids, -1 empty


@dataclass(frozen=True)
class Log:
    searches: pd.DataFrame  # search_id, user_id, day, intent_id, text, typo, tail
    impressions: pd.DataFrame  # search_id, position, video_id, click, watch_s
