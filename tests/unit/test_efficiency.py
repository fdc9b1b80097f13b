"""mlsd.efficiency and mlsd.efficiency_table: pruning, int8, ONNX, distillation, the table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mlsd import metrics as mm
from mlsd.efficiency import (
    Variant,
    compress,
    distill,
    distillation_loss,
    prune,
    quantize_dynamic,
    sparse_bytes,
    sparsity,
    weights_bytes,
    with_network,
)
from mlsd.efficiency_table import (
    EfficiencyNotApplicable,
    measure_efficiency,
    report_efficiency,
)
from mlsd.report import Blueprint


class Net(nn.Module):
    """Two inputs (ids and dense values), one logit per row, like the systems' click networks."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 4)
        self.mlp = nn.Sequential(nn.Linear(4 + 6, width), nn.ReLU(), nn.Linear(width, 1))

    def forward(self, ids: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(torch.cat([self.emb(ids), x], dim=1)).squeeze(1)


def _data(n: int = 1500) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 50, (n,), generator=g)
    x = torch.randn(n, 6, generator=g)
    logit = 1.5 * x[:, 0] - x[:, 1] * x[:, 2] + (ids % 3 == 0).float()
    y = (torch.rand(n, generator=g) < torch.sigmoid(logit)).float()
    return ids, x, y


def _net(seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net()


@pytest.mark.parametrize("amount", [0.3, 0.5, 0.8])
def test_prune_zeroes_the_asked_share_and_leaves_the_original(amount: float) -> None:
    net = _net()
    pruned = prune(net, amount)
    assert sparsity(pruned) == pytest.approx(amount, abs=1e-3)
    assert sparsity(net) == 0.0  # a copy was pruned
    assert set(pruned.state_dict()) == set(net.state_dict())  # saves and loads as before
    assert sparse_bytes(pruned) < sparse_bytes(net)
    with pytest.raises(ValueError, match="amount"):
        prune(net, 1.0)


def test_quantised_model_is_smaller_and_close() -> None:
    net, (ids, x, _) = _net(), _data(200)
    q = quantize_dynamic(net)
    assert weights_bytes(q) < weights_bytes(net)
    assert sparse_bytes(q) < sparse_bytes(net)
    with torch.no_grad():
        assert torch.allclose(q(ids, x), net(ids, x), atol=0.1)
    with pytest.raises(ValueError, match=r"nn\.Linear"):
        quantize_dynamic(nn.Sequential(nn.ReLU()))


def test_onnx_export_matches_torch_and_variants_have_sizes(tmp_path: Path) -> None:
    net, (ids, x, _) = _net(), _data(300)
    variants = compress(
        net, (ids[:8], x[:8]), tmp_path / "net.onnx", name="net", input_names=["ids", "x"]
    )
    assert set(variants) == {"net", "net/pruned_50", "net/int8", "net/onnx"}
    onnx = variants["net/onnx"].module
    with torch.no_grad():
        expected = net(ids, x)  # another batch size than the export's: the batch is dynamic
        assert torch.allclose(onnx(ids, x), expected, atol=1e-4)
    assert variants["net/onnx"].size_bytes == (tmp_path / "net.onnx").stat().st_size > 0
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, nothing left behind
    assert variants["net/pruned_50"].sparsity == pytest.approx(0.5, abs=1e-3)
    assert variants["net/int8"].size_bytes < variants["net"].size_bytes


def test_distilled_student_tracks_the_teacher() -> None:
    ids, x, y = _data()
    train, test = slice(0, 1000), slice(1000, None)
    teacher = _net()
    from mlsd.training import fit_torch

    fit_torch(
        teacher,
        [ids[train], x[train]],
        y[train],
        loss_fn=nn.BCEWithLogitsLoss(),
        epochs=8,
        batch_size=128,
        lr=1e-2,
        seed=0,
        num_threads=1,
    )
    with torch.no_grad():
        t_train = teacher(ids[train], x[train])
        t_test = torch.sigmoid(teacher(ids[test], x[test])).numpy()
    out = distill(
        t_train,
        lambda: Net(width=16),
        [ids[train], x[train]],
        epochs=10,
        batch_size=128,
        lr=1e-2,
        seed=1,
        num_threads=1,
    )
    with torch.no_grad():
        s_test = torch.sigmoid(out.student(ids[test], x[test])).numpy()
    y_test = y[test].numpy()
    auc_t, auc_s = mm.roc_auc(y_test, t_test), mm.roc_auc(y_test, s_test)
    assert auc_t > 0.7
    assert auc_s == pytest.approx(auc_t, abs=0.03)
    assert weights_bytes(out.student) < weights_bytes(teacher)
    assert np.corrcoef(t_test, s_test)[0, 1] > 0.9


def test_distillation_loss_checks_and_mixes_hard_labels() -> None:
    with pytest.raises(ValueError, match="objective"):
        distillation_loss("ranking")
    s, t = torch.full((4,), 1.5), torch.tensor([2.0, -2.0, 0.0, 1.0])
    soft = distillation_loss("binary")(s, t)
    both = distillation_loss("binary", alpha=0.5, with_labels=True)(
        s, torch.stack([t, torch.ones(4)], 1)
    )
    assert float(soft) > 0 and float(both) != float(soft)
    assert float(distillation_loss("regression")(t, t)) == 0.0
    heads = torch.randn(4, 3)  # several heads per row: the loss is elementwise
    assert float(distillation_loss("regression")(heads, heads)) == 0.0


def test_table_applies_the_rule_to_every_contender() -> None:
    net = _net()
    variants = {"original": Variant.of("original", "as trained", net)}
    fast, slow = (lambda: np.full(20, 2.0)), (lambda: np.full(20, 30.0))
    table = measure_efficiency(
        teacher="original",
        previously_served="lr",
        variants=variants,
        techniques={"lr": "the served model"},
        validation={"original": 0.90, "lr": 0.95, "student": 0.92},  # NCE: lower is better
        test={"original": 0.91, "lr": 0.96, "student": 0.93},
        timers={"original": slow, "lr": fast, "student": fast},
        rounds=2,
        budget_ms=10.0,
        metric="NCE",
        higher_is_better=False,
        measured="fake",
    )
    assert table.choice.served == "student"  # the original is too slow; the student beats lr
    assert table.rows["original"].size_bytes == weights_bytes(net)
    assert table.rows["lr"].size_bytes is None
    m = table.metrics()["efficiency"]
    assert m["would_serve"] == "student" and m["variants"]["original"]["p99_ms"] == 30.0
    bp = Blueprint("t")
    report_efficiency(bp, table)
    md = bp.to_markdown()
    assert "would now serve **student**" in md
    with pytest.raises(ValueError, match="no test figure or timer"):
        measure_efficiency(
            teacher="original",
            previously_served="lr",
            variants=variants,
            techniques={},
            validation={"x": 1.0},
            test={},
            timers={},
            rounds=1,
            budget_ms=1.0,
            metric="NCE",
            higher_is_better=False,
            measured="fake",
        )


class TwoHeads(nn.Module):
    """A small CNN of two outputs and no linear layer (like CenterNet)."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.a, self.b = nn.Conv2d(8, 2, 1), nn.Conv2d(8, 1, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.body(x)
        return self.a(h), self.b(h)


def test_a_cnn_of_two_outputs_exports_from_one_example_and_skips_int8(tmp_path: Path) -> None:
    torch.manual_seed(0)
    net = TwoHeads().eval()
    x = torch.randn(5, 3, 8, 8)
    variants = compress(  # an example batch of one: the batch dimension still stays dynamic
        net,
        (x[:1],),
        tmp_path / "cnn.onnx",
        name="cnn",
        input_names=["x"],
        output_names=["a", "b"],
    )
    assert set(variants) == {"cnn", "cnn/pruned_50", "cnn/onnx"}  # no linear layer: no int8
    assert variants["cnn/pruned_50"].sparsity == pytest.approx(0.5, abs=1e-2)
    with torch.no_grad():
        got, want = variants["cnn/onnx"].module(x), net(x)
    assert isinstance(got, tuple) and len(got) == 2
    for g, w in zip(got, want, strict=True):
        assert torch.allclose(g, w, atol=1e-4)


def test_not_applicable_says_why() -> None:
    na = EfficiencyNotApplicable("lists are precomputed", {"lookup_p99_ms": 0.01})
    m = na.metrics()["efficiency"]
    assert m == {"applies": False, "reason": "lists are precomputed", "lookup_p99_ms": 0.01}
    bp = Blueprint("t")
    na.report(bp)
    assert "does not apply here: lists are precomputed" in bp.to_markdown()


class _Fitted:
    def __init__(self) -> None:
        self.network_: nn.Module = nn.Linear(2, 1)
        self.hidden = (4,)


def test_with_network_copies_the_estimator_and_leaves_the_teacher() -> None:
    teacher = _Fitted()
    student = nn.Linear(2, 1)
    variant = with_network(teacher, student, hidden=(1,))
    assert variant.network_ is student and variant.hidden == (1,)
    assert teacher.network_ is not student and teacher.hidden == (4,)
    with pytest.raises(AttributeError, match="has no 'net_'"):
        with_network(teacher, student, attribute="net_")
