"""The batch pipeline: a folder of images in, blurred images and a boxes file out, resumable.

``mlsd blur FOLDER --run DIR --out OUT`` (:func:`blur_folder`) walks ``FOLDER`` for PNG and
JPEG files (sorted, recursively) and reads them ``batch_size`` at a time, so memory stays
bounded whatever the folder's size. Each image is detected and blurred with the run's served
:class:`~.serving.Blurrer` and written to ``OUT/images/<same relative path>`` (atomically: a
temporary file renamed into place); then one JSON line ``{"image", "boxes"}`` (or ``{"image",
"error"}`` for a file that does not decode) is appended to ``OUT/boxes.jsonl`` and flushed.
An interrupted job is resumed by running it again: an image whose line is in ``boxes.jsonl``
(and whose output exists) is not redone; a half-written last line is ignored. At the end
``OUT/summary.json`` records the counts and the measured throughput (images per second).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlsd.artifacts import atomic_path, write_json
from mlsd.data import DataError
from mlsd.engine import Engine, LocalEngine
from mlsd.systems.street_view_blur.serving import (
    Blurrer,
    ImageDecodeError,
    decode_image,
    encode_png,
)

log = logging.getLogger(__name__)

SUFFIXES = (".png", ".jpg", ".jpeg")
BOXES_FILE = "boxes.jsonl"
SUMMARY_FILE = "summary.json"
IMAGES_DIR = "images"


@dataclass(frozen=True)
class BatchReport:
    total: int
    processed: int
    resumed: int  # already done by an earlier, interrupted job
    failed: int
    faces: int
    plates: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.processed / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "processed": self.processed,
            "resumed": self.resumed,
            "failed": self.failed,
            "faces_blurred": self.faces,
            "plates_blurred": self.plates,
            "seconds": round(self.seconds, 3),
            "images_per_second": round(self.images_per_second, 2),
        }


def list_images(folder: Path) -> list[Path]:
    """The PNG / JPEG files under ``folder``, relative to it, sorted."""
    return sorted(
        p.relative_to(folder)
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in SUFFIXES and not p.name.startswith(".")
    )


def finished(out: Path) -> set[str]:
    """The images an earlier job finished (a line in ``boxes.jsonl`` and, unless it failed,
    the output file)."""
    path = out / BOXES_FILE
    done: set[str] = set()
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            rec = json.loads(line)
            name = str(rec["image"])
        except (json.JSONDecodeError, KeyError, TypeError):
            continue  # the half-written last line of an interrupted job
        if "error" in rec or (out / IMAGES_DIR / name).is_file():
            done.add(name)
    return done


def _ends_with_newline(path: Path) -> bool:
    with path.open("rb") as fh:
        fh.seek(-1, os.SEEK_END)
        return fh.read(1) == b"\n"


def _batches(items: list[Path], size: int) -> Iterator[list[Path]]:
    for s in range(0, len(items), size):
        yield items[s : s + size]


def _write_image(path: Path, image: Any, suffix: str) -> None:
    import cv2

    if suffix == ".png":
        data = encode_png(image)
    else:
        ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 92])
        if not ok:
            raise OSError(f"cannot encode {path}")
        data = buf.tobytes()
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


@dataclass(frozen=True)
class BlurJob:
    """What every shard of a batch reads: the folders and the blurrer."""

    folder: Path
    out: Path
    blurrer: Blurrer


def blur_batch(
    job: BlurJob, batch: list[Path]
) -> tuple[list[dict[str, Any]], tuple[int, int, int, int]]:
    """One shard: blur ``batch``'s images into ``job.out``; its log lines and its counts
    (processed, failed, faces, plates). The driver writes the lines, in batch order."""
    lines: list[dict[str, Any]] = []
    processed = failed = faces = plates = 0
    for rel in batch:
        name = rel.as_posix()
        try:
            image = decode_image((job.folder / rel).read_bytes())
        except (ImageDecodeError, OSError) as exc:
            failed += 1
            lines.append({"image": name, "error": str(exc)})
            continue
        result = job.blurrer.blur(image)
        _write_image(job.out / IMAGES_DIR / rel, result.image, rel.suffix.lower())
        labels = result.boxes["label"].to_numpy()
        faces += int((labels == 0).sum())
        plates += int((labels == 1).sum())
        lines.append({"image": name, "boxes": job.blurrer.boxes_json(result.boxes)})
        processed += 1
    return lines, (processed, failed, faces, plates)


def blur_folder(
    folder: Path,
    out: Path,
    blurrer: Blurrer,
    batch_size: int = 32,
    progress: Callable[[int, int], None] | None = None,
    engine: Engine | None = None,
) -> BatchReport:
    """Blur every image of ``folder`` into ``out`` (see the module docstring); on ``engine``,
    the batches in parallel (workers write the images: on a cluster, ``out`` must be shared),
    the log in batch order."""
    folder, out = Path(folder).resolve(), Path(out).resolve()
    if not folder.is_dir():
        raise DataError(folder, "not a folder of images")
    if out == folder or folder in out.parents:
        raise DataError(out, "the output folder must not be inside the input folder")
    names = list_images(folder)
    if not names:
        raise DataError(folder, f"no image files ({', '.join(SUFFIXES)}) in the folder")
    out.mkdir(parents=True, exist_ok=True)
    done = finished(out)
    todo = [p for p in names if p.as_posix() not in done]
    resumed = len(names) - len(todo)
    if resumed:
        log.info("resuming: %d of %d images already blurred", resumed, len(names))
    processed = failed = faces = plates = 0
    t0 = time.perf_counter()
    boxes_path = out / BOXES_FILE
    torn = (
        boxes_path.is_file()
        and boxes_path.stat().st_size > 0
        and not _ends_with_newline(boxes_path)
    )
    with boxes_path.open("a", encoding="utf-8") as log_file:
        if torn:  # an interrupted job's half-written line: start the next one on its own line
            log_file.write("\n")
        job = BlurJob(folder, out, blurrer)
        for lines, counts in (engine or LocalEngine()).imap(
            blur_batch, _batches(todo, batch_size), shared=job
        ):
            processed, failed = processed + counts[0], failed + counts[1]
            faces, plates = faces + counts[2], plates + counts[3]
            log_file.write("".join(json.dumps(rec) + "\n" for rec in lines))
            log_file.flush()
            os.fsync(log_file.fileno())
            if progress is not None:
                progress(resumed + processed + failed, len(names))
    report = BatchReport(
        len(names), processed, resumed, failed, faces, plates, time.perf_counter() - t0
    )
    write_json(out / SUMMARY_FILE, {"model": blurrer.name, **report.to_dict()})
    return report
