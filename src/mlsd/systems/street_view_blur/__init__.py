"""Street-view blurring (the book's chapter 3): detect faces and licence plates, blur them.

**Requirements.** Street-level imagery is published only after every face and licence plate in
it is blurred. Privacy comes first: a face left visible is a failure users report, while some
over-blurring (a shop sign blurred by mistake) is an acceptable cost. Billions of images are
processed offline in batch, so throughput on cheap hardware matters more than latency.

**Framing.** Object detection with two classes (face, plate): boxes and scores per image; the
blur covers every box above its class's threshold, chosen for high recall. Offline: mAP@.5 and
mAP@[.5:.95] (COCO, pycocotools), precision and recall at IoU ≥ 0.5, the share of face and plate
pixels blurred and the over-blur, next to a perfect detector. Online: user reports of unblurred
faces or plates per million images.

The package reads top-down like the chapter: ``world`` and ``world_render`` (procedural street
scenes, every box known, capture conditions drifting by day), ``datasets`` (COCO JSON and
per-image box files, ``--data``), ``features`` (preprocessing, augmentation, CenterNet targets),
``model`` (the line-up), ``model_haar`` (OpenCV's Haar cascades), ``model_centernet`` (the trained
anchor-free detector) and ``model_nms``, ``evaluation`` and ``evaluation_coco`` (offline, with
pycocotools) and ``evaluation_online`` (the report-based A/B test), ``serving`` (the blurrer, its
artifacts), ``serving_blur``, ``serving_batch`` (the resumable batch pipeline) and
``serving_latency`` (speed / accuracy, throughput), ``monitoring`` and ``system`` (the steps);
``commands`` adds ``mlsd blur``.
"""

from mlsd.requirements import Framing, Requirements

REQUIREMENTS = Requirements(
    goal="blur every face and licence plate in street-level images before they are published",
    latency_budget_ms=1000.0,
    latency_budget_for="one image through the batch pipeline on 2 CPU cores (throughput first)",
    throughput_qps=10.0,
    freshness="new imagery is blurred in daily batches before publication",
    scale="hundreds of images (tiny) to millions (large) per batch; billions in production",
    constraints=(
        "privacy first: recall of faces and plates before precision",
        "over-blurring is a measured cost, not ignored",
        "batch processing resumable after an interruption, in bounded memory",
    ),
)

FRAMING = Framing(
    task="object detection, two classes (face, licence plate), then blurring every box",
    input="a street-level image",
    output="boxes with class and score; the image with every box above threshold blurred",
    label="human-annotated boxes of faces and plates (the world's own boxes)",
    offline_metrics=(
        "mAP@.5",
        "mAP@[.5:.95]",
        "recall@IoU0.5",
        "precision@IoU0.5",
        "blurred area share",
        "over-blur",
    ),
    online_metrics=("user reports per million images", "over-blur (guardrail)"),
)
