"""The street-view blurring system, step by step in the chapter's order.

1-2 requirements and framing → 3 data (the street world, or COCO / box files) and features
(input size, object sizes, augmentation) → 4 the detectors side by side (Haar cascades, the
trained CenterNet at full and half resolution) → 5 offline evaluation (pycocotools, privacy
metrics, thresholds on validation) → 6 serving (the blurrer's artifacts, speed / accuracy, the
batch pipeline's throughput) → 5 the online A/B test on user reports → 7 monitoring → summary.
On files the A/B test and monitoring are skipped (no world to show images to, no days).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlsd.canary import CanaryResult
from mlsd.eda import EdaResult, profile_frame, report_eda
from mlsd.efficiency_table import EfficiencyTable, report_efficiency
from mlsd.report import Blueprint
from mlsd.requirements import requirements_step
from mlsd.runner import (
    Pipeline,
    RunContext,
    RunOptions,
    RunRefusedError,
    Skipped,
    Step,
    Summary,
    require,
)
from mlsd.systems.street_view_blur import FRAMING, REQUIREMENTS
from mlsd.systems.street_view_blur.datasets import StreetData, read_files, report_data, world_data
from mlsd.systems.street_view_blur.evaluation import (
    ORACLE,
    SMALL_SIDE,
    OfflineEvaluation,
    compute_offline,
    report_offline,
    run_detectors,
)
from mlsd.systems.street_view_blur.evaluation_canary import (
    compute_canary,
    report_street_view_canary,
)
from mlsd.systems.street_view_blur.evaluation_efficiency import (
    compute_budget_sweep,
    compute_efficiency,
)
from mlsd.systems.street_view_blur.evaluation_online import (
    Arm,
    OnlineTest,
    compute_online,
    report_online,
)
from mlsd.systems.street_view_blur.model import BASELINE, TrainedModels, report_models, train_models
from mlsd.systems.street_view_blur.model_centernet import STRIDE
from mlsd.systems.street_view_blur.monitoring import (
    Monitoring,
    compute_monitoring,
    report_monitoring,
)
from mlsd.systems.street_view_blur.serving import Blurrer, load_blurrer, save_serving_artifacts
from mlsd.systems.street_view_blur.serving_latency import (
    ServingReport,
    compute_serving,
    report_serving,
)
from mlsd.systems.street_view_blur.system_scale import step_scale
from mlsd.systems.street_view_blur.world import CLASSES, StreetWorld
from mlsd.tradeoffs import BudgetSweep, report_budget_sweep
from mlsd.world import Scale

log = logging.getLogger(__name__)

TITLE = "Google Street View Blurring System"
INTRO = (
    "Street-level images are published only after every face and licence plate is blurred. "
    "A capture fleet photographs streets day after day; the system detects faces and plates "
    "with a trained one-stage detector (compared with OpenCV's Haar cascades), blurs every "
    "detection above a threshold chosen for recall, runs as a resumable batch pipeline, and "
    "is judged online by the reports of users who find a face or plate left visible."
)
FILE_SKIPS = (
    ("online", "files have no users to report unblurred faces: the A/B test needs the world"),
    ("monitoring", "files have no capture days to drift over"),
)


@dataclass
class StreetState:
    data: StreetData | None = None
    models: TrainedModels | None = None
    offline: OfflineEvaluation | None = None
    blurrer: Blurrer | None = None
    serving: ServingReport | None = None
    efficiency: EfficiencyTable | None = None
    tradeoffs: BudgetSweep | None = None
    online: OnlineTest | None = None
    canary: CanaryResult | None = None
    monitoring: Monitoring | None = None


@dataclass(frozen=True)
class FeaturesResult:
    width: int
    height: int
    stride: int
    objects_per_image: float
    side_quantiles: dict[str, float]  # sqrt(area) of the training boxes
    small_share: float

    def metrics(self) -> dict[str, Any]:
        return {
            "features": {
                "input": f"{self.width}x{self.height} BGR, normalised",
                "output_stride": self.stride,
                "objects_per_image": self.objects_per_image,
                "object_side_px": self.side_quantiles,
                "small_object_share": self.small_share,
                "augmentation": "horizontal flip, brightness, contrast, night-like darkening, blur",
            }
        }

    def report(self, bp: Blueprint) -> None:
        bp.section("Feature engineering")
        bp.text(
            f"A detector's features are its pixels: every image is {self.width}×{self.height}, "
            f"normalised; the detector predicts on a grid of stride {self.stride}. Training "
            "images are augmented on the fly (flips, brightness, contrast, night-like "
            "darkening, blur). Targets: a Gaussian peak per object centre on its class's "
            f"heatmap, the box size and the centre offset. {self.small_share:.0%} of the "
            f"training objects are small (side under {SMALL_SIDE:.0f} px); "
            f"{self.objects_per_image:.2f} objects per image."
        )
        bp.table(["quantile", "object side (px)"], list(self.side_quantiles.items()))


def new_state(options: RunOptions) -> StreetState:
    return StreetState()


def step_data(ctx: RunContext, state: StreetState) -> StreetData:
    opts = ctx.options
    world = StreetWorld(opts.scale, opts.seed)
    if opts.data:
        data = read_files(opts.data, world)
        for step, why in FILE_SKIPS:
            ctx.skip(step, why)
    else:
        data = world_data(world)
    state.data = data
    report_data(ctx.blueprint, data)
    return data


def step_eda(ctx: RunContext, state: StreetState) -> EdaResult:
    """Step 3's look at the data before features: one row per training image (its conditions,
    brightness and contrast), labelled by whether it holds anything to blur. A condition or an
    image statistic that alone predicts the label would be a shortcut the detector could learn
    instead of faces and plates."""
    data = require(state.data, "the images (step 3, data)")
    train = data.train
    grey = train.images.reshape(len(train), -1, 3).mean(axis=2)  # (n, H*W)
    boxes = np.bincount(train.boxes["image"].to_numpy(np.int64), minlength=len(train))
    frame = (
        train.meta.reset_index(drop=True)
        .drop(columns=["image"], errors="ignore")
        .assign(
            brightness=grey.mean(axis=1),
            contrast=grey.std(axis=1),
            has_object=(boxes[: len(train)] > 0).astype(np.int8),
        )
    )
    result = profile_frame(frame, "has_object", table="training images", seed=ctx.options.seed)
    report_eda(ctx.blueprint, result)
    return result


def step_features(ctx: RunContext, state: StreetState) -> FeaturesResult:
    data = require(state.data, "the images (step 3, data)")
    b = data.train.boxes
    side = np.sqrt((b["w"] * b["h"]).to_numpy(np.float64))
    q = {f"p{p}": float(np.percentile(side, p)) if side.size else 0.0 for p in (10, 50, 90)}
    h, w = data.train.images.shape[1:3]
    result = FeaturesResult(
        w,
        h,
        STRIDE,
        len(b) / max(1, len(data.train)),
        q,
        float((side < SMALL_SIDE).mean()) if side.size else 0.0,
    )
    result.report(ctx.blueprint)
    return result


def step_models(ctx: RunContext, state: StreetState) -> TrainedModels:
    data = require(state.data, "the images (step 3, data)")
    world = StreetWorld(ctx.options.scale, ctx.options.seed)
    source = "the world's images" if data.mode != "split" else "a seeded 60% of the files"
    result = train_models(
        data.train,
        world.config.epochs,
        ctx.options.seed,
        lambda name: ctx.progress(f"training {name}", 0, 1),
        source,
    )
    state.models = result
    report_models(ctx.blueprint, result)
    return result


def step_offline(ctx: RunContext, state: StreetState) -> OfflineEvaluation:
    data = require(state.data, "the images (step 3, data)")
    trained = require(state.models, "the detectors (step 4)")
    detections, seconds = run_detectors(trained.models, (data.val, data.test))
    pairs = {name: (d[0], d[1]) for name, d in detections.items()}
    result = compute_offline(data.val, data.test, trained, pairs, seconds)
    state.offline = result
    report_offline(ctx.blueprint, result)
    return result


def step_serving(ctx: RunContext, state: StreetState) -> ServingReport:
    data = require(state.data, "the images (step 3, data)")
    trained = require(state.models, "the detectors (step 4)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    chosen = offline.chosen
    h, w = data.test.images.shape[1:3]
    info = {"width": w, "height": h, "classes": list(CLASSES), "source": data.source}
    save_serving_artifacts(
        ctx.artifacts_dir, trained.models[chosen], chosen, offline.thresholds[chosen], info
    )
    blurrer = load_blurrer(ctx.artifacts_dir, ctx.settings.torch_threads)  # what is served
    state.blurrer = blurrer
    result = compute_serving(trained, offline, data.test, blurrer, ctx.engine)
    state.serving = result
    report_serving(ctx.blueprint, result, trained, offline)
    return result


def step_efficiency(ctx: RunContext, state: StreetState) -> EfficiencyTable:
    result = compute_efficiency(
        require(state.models, "the detectors (step 4)"),
        require(state.offline, "the offline evaluation (step 5)").chosen,
        require(state.data, "the images (step 3, data)"),
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.efficiency = result
    report_efficiency(ctx.blueprint, result)
    return result


def step_tradeoffs(ctx: RunContext, state: StreetState) -> BudgetSweep:
    offline = require(state.offline, "the offline evaluation (step 5)")
    result = compute_budget_sweep(
        require(state.models, "the detectors (step 4)"),
        {name: float(s.map50) for name, s in offline.val.items()},
        require(state.data, "the images (step 3, data)"),
        scale=str(ctx.options.scale),
        seed=ctx.options.seed,
        torch_thread_count=ctx.settings.torch_threads,
    )
    state.tradeoffs = result
    report_budget_sweep(ctx.blueprint, result)
    return result


def step_online(ctx: RunContext, state: StreetState) -> OnlineTest | None:
    data = require(state.data, "the images (step 3, data)")
    if data.world is None:  # recorded as skipped by the data step
        return None
    trained = require(state.models, "the detectors (step 4)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    control = Arm(BASELINE, trained.models[BASELINE], offline.thresholds[BASELINE])
    chosen = offline.chosen
    treatment = Arm(chosen, trained.models[chosen], offline.thresholds[chosen])
    result = compute_online(data.world, control, treatment)
    state.online = result
    report_online(ctx.blueprint, result)
    return result


def step_canary(ctx: RunContext, state: StreetState) -> CanaryResult | None:
    """After the A/B test: the served detector rolled out in stages against the same control."""
    data = require(state.data, "the images (step 3, data)")
    if data.world is None:
        ctx.skip("canary", "a canary rollout needs new captures from a world; files have none")
        return None
    require(state.online, "the A/B test (the canary follows it)")
    trained = require(state.models, "the detectors (step 4)")
    offline = require(state.offline, "the offline evaluation (step 5)")
    control = Arm(BASELINE, trained.models[BASELINE], offline.thresholds[BASELINE])
    chosen = offline.chosen
    treatment = Arm(chosen, trained.models[chosen], offline.thresholds[chosen])
    result = compute_canary(data.world, control, treatment)
    state.canary = result
    report_street_view_canary(ctx.blueprint, result, data.world)
    return result


def step_monitoring(ctx: RunContext, state: StreetState) -> Monitoring | None:
    data = require(state.data, "the images (step 3, data)")
    if data.world is None:
        return None
    blurrer = require(state.blurrer, "the served blurrer (step 6)")
    result = compute_monitoring(data.world, blurrer, data.val)
    state.monitoring = result
    report_monitoring(ctx.blueprint, result)
    return result


def compute_summary(state: StreetState, skipped: list[Skipped]) -> Summary:
    data = require(state.data, "the images (step 3, data)")
    off = require(state.offline, "the offline evaluation (step 5)")
    serving = require(state.serving, "the serving report (step 6)")
    m, base, oracle = off.test[off.chosen], off.test[BASELINE], off.oracle
    lines = [
        f"- Data: {len(data.train)} / {len(data.val)} / {len(data.test)} train / val / test "
        f"images ({data.source}, mode {data.mode}).",
        f"- Served **{off.chosen}**: test mAP@.5 {m.map50:.3f} (mAP@.5:.95 {m.map:.3f}); "
        f"recall face {m.recall[0]:.3f} / plate {m.recall[1]:.3f}; blurred area face "
        f"{m.area_share[0]:.3f} / plate {m.area_share[1]:.3f}; over-blur {m.over_blur:.4f}.",
        f"- Haar cascades: mAP@.5 {base.map50:.3f}; recall face {base.recall[0]:.3f} / plate "
        f"{base.recall[1]:.3f}; blurred area face {base.area_share[0]:.3f} / plate "
        f"{base.area_share[1]:.3f}.",
        f"- {ORACLE}: mAP@.5 {oracle.map50:.3f}, blurred area {oracle.area_share[0]:.3f} / "
        f"{oracle.area_share[1]:.3f}, over-blur {oracle.over_blur:.4f} (the blur margin).",
        f"- Batch pipeline: {serving.batch['images_per_second']:.1f} images/s end to end.",
    ]
    if state.online is not None:
        lines.append(f"- A/B test: **{state.online.ab.decision}**: {state.online.ab.reason}")
    if state.monitoring is not None:
        mon = state.monitoring
        lines.append(
            f"- Monitoring: {len(mon.alerts)} alerts; retrain "
            f"{'triggered' if mon.retrain else 'not triggered'}."
        )
    return Summary.of(lines, skipped)


def step_summary(ctx: RunContext, state: StreetState) -> Summary:
    result = compute_summary(state, ctx.skipped)
    result.report(ctx.blueprint)
    return result


def steps(options: RunOptions) -> list[Step[StreetState]]:
    if options.test_data:
        raise RunRefusedError(
            "street-view-blur --test-data: the coco: and boxes: layouts split their images "
            "themselves (or test on all of them when there are few)"
        )
    if Scale(options.scale) == Scale.LARGE and not options.data:
        raise RunRefusedError(
            "street-view-blur --scale large is not supported yet: the run holds its labelled "
            "images in memory and trains on 2 CPU cores; run a million images through the "
            "batch pipeline instead (`mlsd blur FOLDER --run DIR --out OUT`: bounded memory, "
            "resumable); use --scale tiny, small or medium"
        )
    return [
        requirements_step(INTRO, REQUIREMENTS, FRAMING),
        Step("data", "3. Data preparation", step_data),
        Step("eda", "3. Exploratory data analysis", step_eda),
        Step("features", "3. Feature engineering", step_features),
        Step("models", "4. Model development", step_models),
        Step("evaluation", "5. Offline evaluation", step_offline),
        Step("serving", "6. Serving", step_serving),
        Step("efficiency", "6. Efficiency: distillation, pruning, ONNX", step_efficiency),
        Step("tradeoffs", "6. Trade-offs: latency budget × batch size", step_tradeoffs),
        Step("online", "5. Online A/B test", step_online),
        Step("canary", "5-6. Canary rollout", step_canary),
        Step("monitoring", "7. Monitoring", step_monitoring),
        Step("scale", "Scale", step_scale),
        Step("summary", "Summary", step_summary),
    ]


PIPELINE: Pipeline[StreetState] = Pipeline(TITLE, new_state, steps)
