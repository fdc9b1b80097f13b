"""Title encoders: the hashing stand-in is cached, unit-norm and deterministic."""

from __future__ import annotations

import numpy as np
import pytest

from mlsd.text import EMBED_DIM, make_encoder


def test_hashing_encoder_is_cached_unit_and_deterministic() -> None:
    enc = make_encoder("hashing")
    a = enc.encode(["best pasta guide", "best pasta guide", "my first concert"])
    assert a.shape == (3, EMBED_DIM) and np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert enc.encoded == 2 and np.array_equal(a[0], a[1])
    assert np.array_equal(make_encoder("hashing").encode(["my first concert"])[0], a[2])
    assert enc.encode([]).shape == (0, EMBED_DIM)
    with pytest.raises(ValueError, match="unknown title encoder"):
        make_encoder("bert")
