"""The PyTorch training loop: it learns, it stops early and restores the best weights, it is
deterministic by seed, and it leaves the caller's torch state (RNG, threads) alone."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from mlsd.training import TrainHistory, fit_torch, make_optimizers

torch.set_num_threads(1)


class Logistic(nn.Module):
    def __init__(self, n_in: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).squeeze(1)


def make_data(n: int, seed: int, flip: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).float()
    return x, (1.0 - y) if flip else y


def seeded_module(seed: int) -> Logistic:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return Logistic(4)


def train(module: nn.Module, **overrides: object) -> TrainHistory:
    x, y = make_data(512, seed=0)
    kwargs: dict[str, object] = {
        "loss_fn": nn.BCEWithLogitsLoss(),
        "epochs": 5,
        "batch_size": 64,
        "lr": 0.05,
        "seed": 0,
        "num_threads": 1,
    }
    kwargs.update(overrides)
    return fit_torch(module, [x], y, **kwargs)  # type: ignore[arg-type]


def test_loss_decreases() -> None:
    history = train(seeded_module(0))
    assert history.epochs_run == 5
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]
    assert len(history.examples_per_second) == 5
    assert all(eps > 0 for eps in history.examples_per_second)
    assert history.val_loss == []


def test_early_stopping_restores_the_best_weights() -> None:
    module = seeded_module(0)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}
    seen: list[tuple[int, float, float | None]] = []

    def progress(epoch: int, train_loss: float, val_loss: float | None) -> None:
        seen.append((epoch, train_loss, val_loss))
        snapshots[epoch] = copy.deepcopy(module.state_dict())

    # the validation labels are the opposite of the training labels: val loss rises each epoch
    val = make_data(256, seed=1, flip=True)
    history = train(module, epochs=20, patience=2, val=([val[0]], val[1]), progress=progress)

    assert history.stopped_early
    assert history.epochs_run < 20
    assert history.best_epoch == min(range(history.epochs_run), key=history.val_loss.__getitem__)
    assert history.epochs_run == history.best_epoch + 1 + 2
    assert [e for e, _, _ in seen] == list(range(history.epochs_run))
    last = snapshots[history.epochs_run - 1]
    best = snapshots[history.best_epoch]
    for name, tensor in module.state_dict().items():
        torch.testing.assert_close(tensor, best[name])
        assert not torch.equal(tensor, last[name])
    with torch.no_grad():
        restored_loss = float(nn.BCEWithLogitsLoss()(module(val[0]), val[1]))
    assert restored_loss == pytest.approx(history.val_loss[history.best_epoch], rel=1e-5)


def test_same_seed_same_result_and_no_global_side_effects() -> None:
    rng_before = torch.random.get_rng_state()
    threads_before = torch.get_num_threads()
    a, b, c = seeded_module(0), seeded_module(0), seeded_module(0)
    history_a = train(a, num_threads=2)
    history_b = train(b, num_threads=2)
    history_c = train(c, seed=1)

    assert history_a.train_loss == history_b.train_loss
    for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
        assert torch.equal(pa, pb)
    assert history_c.train_loss != history_a.train_loss  # another shuffling order
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    assert torch.get_num_threads() == threads_before


def test_sparse_embeddings_get_sparse_adam() -> None:
    module = nn.Sequential(nn.Embedding(100, 4, sparse=True), nn.Flatten(), nn.Linear(8, 1))
    optimizers = make_optimizers(module, lr=0.01, weight_decay=0.0)
    assert sorted(type(o).__name__ for o in optimizers) == ["Adam", "SparseAdam"]
    ids = torch.randint(0, 100, (64, 2), generator=torch.Generator().manual_seed(0))
    y = (ids[:, 0] % 2).float()

    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = module

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x).squeeze(1)

    history = fit_torch(
        Net(), [ids], y, loss_fn=nn.BCEWithLogitsLoss(), epochs=30, batch_size=16, lr=0.05, seed=0
    )
    assert history.train_loss[-1] < 0.5 * history.train_loss[0]


def test_bad_input_is_rejected() -> None:
    x, y = make_data(10, seed=0)
    with pytest.raises(ValueError, match="tensor 0 has 9 rows"):
        fit_torch(
            seeded_module(0),
            [x[:9]],
            y,
            loss_fn=nn.BCEWithLogitsLoss(),
            epochs=1,
            batch_size=4,
            lr=0.1,
            seed=0,
        )
    with pytest.raises(ValueError, match="patience"):
        train(seeded_module(0), patience=0)


def test_train_loop_takes_any_batch_source_loss_and_schedule() -> None:
    """The contrastive / two-tower shape: batches drawn with the loop's generator, a loss that
    is not (output, label), a learning-rate schedule; reproducible by seed."""
    from mlsd.training import train_loop

    x, y = make_data(256, seed=0)

    def batches(epoch: int, generator: torch.Generator) -> list[tuple[torch.Tensor, ...]]:
        rows = torch.randint(0, 256, (8, 32), generator=generator)  # sampled, with replacement
        return [(x[r], y[r]) for r in rows]

    def loss(module: nn.Module, batch: tuple[torch.Tensor, ...]) -> torch.Tensor:
        return nn.functional.binary_cross_entropy_with_logits(module(batch[0]), batch[1])

    runs = []
    for _ in range(2):
        module = seeded_module(0)
        history = train_loop(
            module, batches, loss, epochs=5, lr=0.1, seed=3, lr_at_step=lambda s: 1.0 / (1 + s)
        )
        runs.append((history, module.linear.weight.detach().clone()))
    (h1, w1), (h2, w2) = runs
    assert len(h1.step_loss) == 40 and h1.epochs_run == 5
    assert h1.step_loss == h2.step_loss and torch.equal(w1, w2)
    assert sum(h1.step_loss[-8:]) < sum(h1.step_loss[:8])


def test_train_loop_rejects_an_empty_source() -> None:
    from mlsd.training import train_loop

    with pytest.raises(ValueError, match="no rows"):
        train_loop(
            Logistic(4),
            lambda epoch, g: [],
            lambda m, b: torch.zeros(()),
            epochs=1,
            lr=0.1,
            seed=0,
        )
