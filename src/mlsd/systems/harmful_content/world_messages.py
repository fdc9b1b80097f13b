"""The message pool: every text a post can carry, with its hidden harm attributes.

A message is benign chatter (some of it with coded or context words used harmlessly), counter-
speech (quoting an explicit harm phrase to condemn it), or a harmful message of one class with a
strength ``s`` (more and more explicit words as ``s`` grows), written explicitly, in code (a coded
word next to a context word), or as the weak half of a meme (a coded word alone, harmful only
with a matching image); a share of harmful messages is obfuscated. The drift messages use a
vocabulary that appears only in the last days.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlsd.rng import rng
from mlsd.systems.harmful_content import CLASSES
from mlsd.systems.harmful_content.world_config import (
    BENIGN_TOPICS,
    CODED,
    CONTEXT,
    COUNTER_FRAMES,
    EXPLICIT,
    FILLER,
    LEET,
    NEW_VOCAB,
    HarmWorldConfig,
)

TOPICS = {k: v.split() for k, v in BENIGN_TOPICS.items()}
KINDS = ("benign", "counter", "explicit", "coded", "meme", "drift")


def obfuscate(phrase: str, r: np.random.Generator) -> str:
    """Leetspeak, a misspelling, or spaced-out letters."""
    how = r.integers(0, 3)
    if how == 0:
        return phrase.translate(LEET)
    if how == 1:
        words = []
        for w in phrase.split():
            if len(w) > 3:
                i = int(r.integers(1, len(w) - 1))
                w = w[:i] + w[i] + w[i:] if r.random() < 0.5 else w[:i] + w[i + 1 :]
            words.append(w)
        return " ".join(words)
    return " ".join(" ".join(w) if len(w) <= 5 else w for w in phrase.split())


def _chatter(r: np.random.Generator, n_words: int) -> list[str]:
    topic = TOPICS[list(TOPICS)[int(r.integers(0, len(TOPICS)))]]
    words = [topic[int(i)] for i in r.integers(0, len(topic), n_words)]
    for _ in range(int(r.integers(1, 4))):
        words.insert(int(r.integers(0, len(words) + 1)), FILLER[int(r.integers(0, len(FILLER)))])
    return words


def _pick(r: np.random.Generator, items: list[str]) -> str:
    return items[int(r.integers(0, len(items)))]


def _shuffle_in(r: np.random.Generator, words: list[str], phrases: list[str]) -> str:
    for p in phrases:
        words.insert(int(r.integers(0, len(words) + 1)), p)
    return " ".join(words)


def _message(r: np.random.Generator, c: int, kind: str) -> tuple[str, float, bool]:
    """A harmful message of class ``c``: ``(text, strength, obfuscated)``."""
    name = CLASSES[c]
    s = float(r.uniform(0.2, 3.0))
    obf = bool(r.random() < 0.35)
    phrases: list[str] = []
    if kind == "explicit":
        phrases = [_pick(r, EXPLICIT[name]) for _ in range(1 + int(s > 1.2) + int(s > 2.2))]
    elif kind == "coded":
        phrases = [_pick(r, CODED[name]), _pick(r, CONTEXT[name])]
        if s > 2.2:
            phrases.append(_pick(r, EXPLICIT[name]))
    elif kind == "meme":
        phrases, s = [_pick(r, CODED[name])], 0.3
    else:  # drift: the new vocabulary
        phrases = [_pick(r, NEW_VOCAB[name]) for _ in range(1 + int(s > 1.5))]
    if obf:
        phrases = [obfuscate(p, r) for p in phrases]
    return _shuffle_in(r, _chatter(r, int(r.integers(3, 7))), phrases), s, obf


def message_pool(cfg: HarmWorldConfig, seed: int) -> pd.DataFrame:
    """``message_id, text, cls (-1 benign), strength, kind, obfuscated, quoted_cls``."""
    r = rng(seed, "harmful-content/messages")
    rows: list[tuple[str, int, float, str, bool, int]] = []
    for _ in range(cfg.benign_messages):
        words = _chatter(r, int(r.integers(4, 10)))
        u = r.random()
        if u < 0.08:  # counter-speech quoting an explicit phrase
            q = int(r.integers(0, len(CLASSES)))
            template = _pick(r, list(COUNTER_FRAMES))
            text = template.format(x=_pick(r, EXPLICIT[CLASSES[q]])) + " " + " ".join(words[:3])
            rows.append((text, -1, 0.0, "counter", False, q))
            continue
        if u < 0.20:  # a coded or a context word, used harmlessly
            q = int(r.integers(0, len(CLASSES)))
            pool = CODED if r.random() < 0.5 else CONTEXT
            words.insert(int(r.integers(0, len(words) + 1)), _pick(r, pool[CLASSES[q]]))
        rows.append((" ".join(words), -1, 0.0, "benign", False, -1))
    for c in range(len(CLASSES)):
        for i in range(cfg.harmful_messages):
            kind = "explicit" if i % 10 < 5 else "coded" if i % 10 < 8 else "meme"
            text, s, obf = _message(r, c, kind)
            rows.append((text, c, s, kind, obf, -1))
        for _ in range(max(4, cfg.harmful_messages // 3)):
            text, s, obf = _message(r, c, "drift")
            rows.append((text, c, s, "drift", obf, -1))
    frame = pd.DataFrame(
        rows, columns=["text", "cls", "strength", "kind", "obfuscated", "quoted_cls"]
    )
    frame.insert(0, "message_id", np.arange(len(frame), dtype=np.int64))
    return frame
