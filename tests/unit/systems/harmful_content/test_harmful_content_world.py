"""The harmful-content world: deterministic, rare multi-label harm drawn from the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.systems.harmful_content import CLASSES
from mlsd.systems.harmful_content.world import HarmWorld, harm_probability
from mlsd.systems.harmful_content.world_config import HarmWorldConfig
from mlsd.systems.harmful_content.world_images import render_image
from mlsd.systems.harmful_content.world_messages import obfuscate
from mlsd.world import Scale

CFG = HarmWorldConfig.for_scale(Scale.TINY).with_(n_posts=1500, n_authors=200)


@pytest.fixture(scope="module")
def world() -> HarmWorld:
    return HarmWorld(Scale.TINY, 3, CFG)


def test_the_same_seed_gives_the_same_world(world: HarmWorld) -> None:
    again = HarmWorld(Scale.TINY, 3, CFG)
    assert again.posts["text"].tolist() == world.posts["text"].tolist()
    np.testing.assert_array_equal(again.labels(), world.labels())
    other = HarmWorld(Scale.TINY, 4, CFG)
    assert other.posts["text"].tolist() != world.posts["text"].tolist()


def test_harm_is_rare_multi_class_and_drawn_from_the_oracle(world: HarmWorld) -> None:
    y, p = world.labels(), world.oracle()
    assert y.shape == p.shape == (CFG.n_posts, len(CLASSES))
    assert 0.005 < y.any(axis=1).mean() < 0.2  # the tiny world boosts the signal rate
    assert (y.sum(axis=0) > 0).all()
    assert ((p >= 0) & (p <= 1)).all()
    assert p[y == 1].mean() > 0.4 > p[y == 0].mean()  # labels follow the oracle
    assert world.posts["ts"].is_monotonic_increasing


def test_memes_are_harmful_only_in_combination() -> None:
    assert harm_probability(np.array([0.3]))[0] < 0.05  # a weak half alone
    assert harm_probability(np.array([0.3 + 0.3 + 2.2]))[0] > 0.9  # both halves


def test_counter_speech_quotes_harm_but_is_benign(world: HarmWorld) -> None:
    counter = ((world.posts["kind"] == "counter") & (world.posts["img_cls"] < 0)).to_numpy()
    assert counter.any()
    assert world.labels()[counter].sum() == 0  # harmful only where the image carries harm


def test_obfuscation_changes_the_phrase() -> None:
    r = np.random.default_rng(0)
    outs = {obfuscate("free money", r) for _ in range(20)}
    assert "free money" not in outs and len(outs) > 2


def test_images_show_their_class_glyph() -> None:
    blank = render_image(-1, 0.0, 0, 5, 32)
    hate = render_image(0, 3.0, 0, 5, 32)
    assert blank.shape == hate.shape == (32, 32, 3) and blank.dtype == np.uint8
    assert (hate.astype(int) - blank.astype(int)).any()
    assert hate.min() < 40  # the cross is drawn in black
    np.testing.assert_array_equal(render_image(0, 3.0, 0, 5, 32), hate)
