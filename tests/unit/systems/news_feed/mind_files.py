"""Small files in the news-recommendation benchmark's layout (MIND), for the loader's tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

CATEGORIES = ("sports", "news", "finance", "lifestyle")
WORDS = {
    "sports": "match goal team league win",
    "news": "election vote government city court",
    "finance": "stock market bank rates money",
    "lifestyle": "recipe travel style home garden",
}


def write_mind(
    root: Path, seed: int = 0, n_users: int = 40, n_news: int = 60, n_imps: int = 300
) -> Path:
    """``news.tsv`` and ``behaviors.tsv``: each user prefers one category and clicks it more."""
    r = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    cats = r.integers(0, len(CATEGORIES), n_news)
    lines = []
    for i in range(n_news):
        c = CATEGORIES[cats[i]]
        title = " ".join(r.choice(WORDS[c].split(), 3)) + f" story {i}"
        lines.append(f"N{i}\t{c}\t{c}-sub{i % 2}\t{title}\tan abstract\thttps://x/{i}\t[]\t[]")
    (root / "news.tsv").write_text("\n".join(lines) + "\n")
    taste = r.integers(0, len(CATEGORIES), n_users)
    t0 = datetime(2019, 11, 9, 8, 0, 0)
    rows = []
    for k in range(n_imps):
        u = int(r.integers(0, n_users))
        liked = np.flatnonzero(cats == taste[u])
        hist = " ".join(f"N{j}" for j in r.choice(liked, min(3, len(liked)), replace=False))
        shown = r.choice(n_news, 6, replace=False)
        p = np.where(cats[shown] == taste[u], 0.6, 0.08)
        clicks = (r.random(6) < p).astype(int)
        if clicks.sum() == 0:
            clicks[int(np.argmax(p))] = 1
        imps = " ".join(f"N{n}-{c}" for n, c in zip(shown, clicks, strict=True))
        when = (t0 + timedelta(minutes=20 * k)).strftime("%m/%d/%Y %I:%M:%S %p")
        rows.append(f"{k + 1}\tU{u}\t{when}\t{hist}\t{imps}")
    (root / "behaviors.tsv").write_text("\n".join(rows) + "\n")
    return root
