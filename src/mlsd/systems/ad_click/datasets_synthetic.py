"""A synthetic CTR data set in libFM layout, shaped like the public context-aware app-usage
benchmark (Frappe): for benchmarks and tests where no public file is at hand.

Ten one-hot fields per row, as the public libFM CTR files have them: a user (300 values) and
an item (1,000, Zipf-popular), eight context fields (daytime, weekday, weekend, home/work, cost,
weather, country, city; the user's country and usual city mostly fixed by the user). Each field
value has a global feature index, as in libFM files (``label idx:1 idx:1 ...``).

The click probability is a logistic function of an item bias, a user bias and *interactions*:
user x item and (daytime, weather, home/work) x item through latent factors, and the city x cost
cross, so a model that sees every field but no interaction is beaten by one that learns them.
The intercept puts the positive rate near Frappe's one in three. Every draw comes from named
streams of the seed (:mod:`mlsd.rng`); the same seed writes the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlsd.artifacts import write_text
from mlsd.rng import rng

__all__ = ["FIELDS", "SyntheticCTR", "write_synthetic_libfm"]

# field -> number of values
FIELDS: dict[str, int] = {
    "user": 300,
    "item": 1000,
    "daytime": 7,
    "weekday": 7,
    "weekend": 2,
    "homework": 3,
    "cost": 2,
    "weather": 9,
    "country": 30,
    "city": 100,
}
_DIM = 4  # latent factors of the true model


@dataclass(frozen=True)
class SyntheticCTR:
    """Where the files were written, their sizes and their positive rates."""

    train: Path
    test: Path
    n_train: int
    n_test: int
    positive_rate: float


def _draw(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n`` rows: (n, 10) value codes per field, the 0/1 labels and the true probabilities."""
    g = rng(seed, "synthetic-ctr/world")
    n_users, n_items = FIELDS["user"], FIELDS["item"]
    user_country = g.integers(0, FIELDS["country"], n_users)
    user_city = g.integers(0, FIELDS["city"], n_users)
    item_pop = 1.0 / np.arange(1, n_items + 1) ** 0.9
    item_pop /= item_pop.sum()
    u_vec = g.normal(0, 1.0, (n_users, _DIM))
    i_vec = g.normal(0, 1.0, (n_items, _DIM))
    ctx_vec = {f: g.normal(0, 0.8, (FIELDS[f], _DIM)) for f in ("daytime", "weather", "homework")}
    i_bias = g.normal(0, 1.5, n_items)
    u_bias = g.normal(0, 0.7, n_users)
    city_cost = g.normal(0, 1.0, (FIELDS["city"], FIELDS["cost"]))

    r = rng(seed, "synthetic-ctr/rows")
    user = r.integers(0, n_users, n)
    item = r.choice(n_items, n, p=item_pop)
    weekday = r.integers(0, 7, n)
    codes = {
        "user": user,
        "item": item,
        "daytime": r.integers(0, 7, n),
        "weekday": weekday,
        "weekend": (weekday >= 5).astype(np.int64),
        "homework": r.integers(0, 3, n),
        "cost": r.integers(0, 2, n),
        "weather": r.integers(0, 9, n),
        # mostly the user's own country and city, sometimes travelling
        "country": np.where(r.random(n) < 0.9, user_country[user], r.integers(0, 30, n)),
        "city": np.where(r.random(n) < 0.8, user_city[user], r.integers(0, 100, n)),
    }
    logit = i_bias[item] + u_bias[user] + (u_vec[user] * i_vec[item]).sum(1)
    for f, vec in ctx_vec.items():
        logit += (vec[codes[f]] * i_vec[item]).sum(1)
    logit += city_cost[codes["city"], codes["cost"]]
    logit += -1.7 - float(np.mean(logit))  # about one row in three a click
    p = 1.0 / (1.0 + np.exp(-logit))
    y = (r.random(n) < p).astype(np.int64)
    return np.stack([codes[f] for f in FIELDS], axis=1), y, p


def _lines(codes: np.ndarray, y: np.ndarray) -> str:
    offsets = np.cumsum([0, *FIELDS.values()])[:-1]
    idx = codes + offsets  # global feature index, as libFM files number them
    rows = [
        f"{label} " + " ".join(f"{i}:1" for i in row) for label, row in zip(y, idx, strict=True)
    ]
    return "\n".join(rows) + "\n"


def write_synthetic_libfm(
    out_dir: Path, n_train: int = 40_000, n_test: int = 10_000, seed: int = 0
) -> SyntheticCTR:
    """Write ``train.libfm`` and ``test.libfm`` (rows drawn i.i.d. from one world) under
    ``out_dir``; labels 1 / -1 as in the public files."""
    if n_train < 20 or n_test < 2:
        raise ValueError(f"need n_train >= 20 and n_test >= 2, got {n_train} and {n_test}")
    codes, y, _ = _draw(n_train + n_test, seed)
    labels = np.where(y == 1, 1, -1)
    out_dir.mkdir(parents=True, exist_ok=True)
    train, test = out_dir / "train.libfm", out_dir / "test.libfm"
    write_text(train, _lines(codes[:n_train], labels[:n_train]))
    write_text(test, _lines(codes[n_train:], labels[n_train:]))
    return SyntheticCTR(train, test, n_train, n_test, float(y.mean()))
