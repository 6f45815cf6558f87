"""A `batch_inference` attempt (protocol v1.5): run a model over a dataset version or a zip of images.

It is a job like training, in its own process, placed and cancelled the same way, and it reports
through the same callbacks; so it reuses the job runner's reporting (outbox, heartbeats, cancel
flag and marker, final upload of the log) and replaces only what the attempt does. Training's
per-epoch path is not touched.

Progress rides on the fields a job already has: `total_epochs` on `started` is the number of
images and `epoch` on heartbeats the images done. Outputs, under `output_uri` (`OUTPUT_KEYS`):
one JSON line and one CSV row per image, a summary (counts per class, score histogram, images/s)
and a few drawn images for the gallery. A cancelled or failed attempt uploads none of them, so
a result is never half-written.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import queue
import signal
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, cast

from trainer_runner.errors import JobCancelled, UserError, classify
from trainer_runner.inference import sniff_framework
from trainer_runner.job import OOM_MESSAGE, JobRunner
from trainer_runner.logs import configure_logging
from trainer_runner.plugins import get_plugin, primary_device, resolve_device
from trainer_runner.predictions import draw
from trainer_runner.schemas import BatchInference, CallbackError, EventState
from trainer_runner.storage import download_file, parse_s3_uri, upload_bytes, upload_json
from trainer_runner.threads import lower_this_thread
from trainer_runner.workdir import LOG_FILE, write_status

log = logging.getLogger("trainer_runner.batch")

OUTPUT_KEYS = {
    "predictions_jsonl": "inference/predictions.jsonl",
    "predictions_csv": "inference/predictions.csv",
    "inference_summary": "inference/summary.json",
}
GALLERY_KEY = "inference/gallery/{index:02d}_{stem}.png"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
MAX_ENTRY_BYTES = 50 * 1024 * 1024  # one image; guards against zip bombs
# The warm-up looks this far for a readable image (a zip may start with unreadable files).
WARM_UP_TRIES = 5
HISTOGRAM_BINS = 10
# Images decoded ahead of the model (`Prefetcher`): enough to ride out a slow decode or a moment
# without CPU, few enough that a zip of large photos does not fill the memory.
PREFETCH_DEPTH = 8
# Images of one size predicted per call of the model: on a CPU, 8 per call about doubled the
# images per second of one at a time (yolo11n, 160 px, 2 cores); more gained nothing.
PREDICT_BATCH = 8
CSV_COLUMNS = ("image", "split", "width", "height", "predictions", "top_class", "top_score", "error")


@dataclass(frozen=True)
class SourceImage:
    name: str  # the entry's path inside the zip
    split: str  # dataset split, "" for a zip of images


def zip_images(archive: Path) -> list[SourceImage]:
    """The images of an uploaded zip, in name order. Raises UserError naming what to fix."""
    try:
        with zipfile.ZipFile(archive) as zf:
            names = [i.filename for i in zf.infolist() if not i.is_dir()]
    except zipfile.BadZipFile as exc:
        raise UserError("the upload is not a zip file: zip the images and upload the .zip") from exc
    found = []
    for name in sorted(names):
        path = PurePosixPath(name)
        if path.is_absolute() or ".." in path.parts:
            raise UserError(f"unsafe path in the zip: {name!r}")
        if path.suffix.lower() in IMAGE_SUFFIXES and "__MACOSX" not in path.parts:
            found.append(SourceImage(name, ""))
    if not found:
        raise UserError(f"the zip holds no images; use {sorted(IMAGE_SUFFIXES)}")
    return found


def manifest_images(manifest: dict[str, Any]) -> list[SourceImage]:
    """Every image of a dataset version, all splits, in manifest order."""
    images = manifest.get("images")
    if not isinstance(images, list) or not images:
        raise UserError("the dataset version lists no images")
    return [SourceImage(str(i["path"]), str(i.get("split", ""))) for i in images]


Decoded = tuple[Any, dict[str, Any]]  # (PIL image or None, the image's row so far)


def groups(decoded: Iterable[Decoded], limit: int) -> Iterator[list[Decoded]]:
    """The decoded images in order, as runs of consecutive images of one size (at most `limit`
    each) for one call of the model; an unreadable image (None) comes alone."""
    pending: list[Decoded] = []
    for item in decoded:
        image = item[0]
        if pending and (image is None or image.size != pending[0][0].size):
            yield pending
            pending = []
        if image is None:
            yield [item]
            continue
        pending.append(item)
        if len(pending) >= limit:
            yield pending
            pending = []
    if pending:
        yield pending


class Prefetcher:
    """Decodes the images in a thread of its own, at most `depth` ahead of the model.

    The model is the loop's cost: decoding an image from the zip while the model waits would add
    its time to every image (a few percent at small sizes), and `images_per_s` would no longer be
    the model's pace. Decoding alongside instead overlaps it with prediction, and the model finds
    the next image ready. The thread runs at a lower priority (`lower_this_thread`): it needs
    little CPU and takes it mostly where the model leaves a core idle; being `depth` ahead, it
    can fall behind for a while without the model waiting.

    Iterate it for the decoded images in order; `close()` (or leaving a `with` block) stops the
    thread and drops what it had decoded, so a cancelled run leaves nothing behind. A failure
    while reading (the archive itself unreadable) is raised where the next image is taken.
    """

    _END = object()

    def __init__(self, source: Callable[[], Iterator[Decoded]], depth: int = PREFETCH_DEPTH) -> None:
        self._queue: queue.Queue[object] = queue.Queue(maxsize=max(depth, 1))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._fill, args=(source,), name="decode", daemon=True)
        self._thread.start()

    def _fill(self, source: Callable[[], Iterator[Decoded]]) -> None:
        lower_this_thread()
        try:
            for item in source():
                if not self._put(item):
                    return
            self._put(self._END)
        except BaseException as exc:  # handed to the consumer, raised there
            self._put(exc)

    def _put(self, item: object) -> bool:
        """Queue `item`, waiting for room; False once closed (the consumer takes no more)."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[Decoded]:
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            if isinstance(item, BaseException):
                raise item
            yield cast(Decoded, item)

    def close(self) -> None:
        """Stop decoding and wait for the thread (it notices within 0.1 s of a full queue, or
        after the image it is decoding)."""
        self._stop.set()
        while True:  # make room, so a put in progress returns at once
            try:
                self._queue.get_nowait()
            except queue.Empty:
                break
        self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def summarise(rows: list[dict[str, Any]], task: str, classes: list[str]) -> dict[str, Any]:
    """Counts per class (boxes; top-1 for classification) and a histogram of their scores."""
    counts: Counter[str] = Counter()
    histogram = [0] * HISTOGRAM_BINS
    for row in rows:
        found = row.get("boxes") or row.get("probabilities", [])[:1]
        for item in found:
            counts[item["class_name"]] += 1
            histogram[min(int(item["score"] * HISTOGRAM_BINS), HISTOGRAM_BINS - 1)] += 1
    return {
        "task": task,
        "classes": classes,
        "images": len(rows),
        "failed_images": sum(1 for r in rows if r.get("error")),
        "predictions": sum(counts.values()),
        "counts": {name: counts.get(name, 0) for name in classes},
        "score_histogram": {
            "edges": [round(i / HISTOGRAM_BINS, 2) for i in range(HISTOGRAM_BINS + 1)],
            "counts": histogram,
        },
    }


def csv_row(row: dict[str, Any]) -> dict[str, Any]:
    found = row.get("boxes") or row.get("probabilities") or []
    top = found[0] if found else None
    return {
        "image": row["image"],
        "split": row.get("split", ""),
        "width": row.get("width", ""),
        "height": row.get("height", ""),
        "predictions": len(row.get("boxes", found[:1])),
        "top_class": top["class_name"] if top else "",
        "top_score": round(float(top["score"]), 4) if top else "",
        "error": row.get("error", ""),
    }


class BatchRunner(JobRunner):
    """One batch inference attempt; reporting is the job runner's."""

    def run(self) -> str:
        """Run the attempt; returns the final state. Never raises for a job failure."""
        spec = self.spec.inference
        assert spec is not None, "StartJobRequest checks that a batch job has 'inference'"
        signal.signal(signal.SIGTERM, self._on_sigterm)
        configure_logging(
            {"job_id": self.spec.job_id, "attempt": self.spec.attempt, "kind": self.spec.kind},
            self.work_dir / LOG_FILE,
        )
        logging.getLogger().addHandler(self.tail)
        write_status(self.work_dir, state="running", epoch=None, pid=os.getpid())
        state: EventState = "failed"
        error, heartbeat = None, None
        metrics: dict[str, float] = {}
        try:
            from trainer_runner.storage import make_s3_client

            self.s3 = make_s3_client(self.settings)
            self.device = resolve_device(self.spec.device, self.spec.resources.gpus)
            scratch = self.work_dir / "dataset"
            images, archive = self._source(spec, scratch)
            self.epoch = 0
            self.outbox.put(self._event("started", total_epochs=len(images)))
            heartbeat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
            heartbeat.start()
            if self.settings.cancel_poll_s > 0:
                threading.Thread(target=self._cancel_poll_loop, name="cancel-poll", daemon=True).start()
            # Decoding starts now, so the first images are ready when the model is.
            with Prefetcher(lambda: self._decoded(images, archive)) as decoded:
                checkpoint = download_file(
                    self.s3, parse_s3_uri(spec.model_uri), self.work_dir / "runs" / "model.pt"
                )
                plugin = get_plugin(sniff_framework(checkpoint))
                model = plugin.load_model(checkpoint, primary_device(self.device))
                self._warm_up(model, spec, images, archive)
                started = time.perf_counter()
                rows, gallery = self._predict_all(model, spec, decoded)
                elapsed = time.perf_counter() - started
            summary = summarise(rows, model.task, model.classes)
            summary.update(
                model_uri=spec.model_uri,
                elapsed_s=round(elapsed, 3),
                images_per_s=round(len(rows) / elapsed, 2) if elapsed > 0 else None,
                gallery=self._upload_gallery(gallery),
            )
            self._upload_results(rows, summary)
            metrics = {
                "images": float(summary["images"]),
                "predictions": float(summary["predictions"]),
                "failed_images": float(summary["failed_images"]),
                "images_per_s": float(summary["images_per_s"] or 0.0),
            }
            state = "succeeded"
        except JobCancelled:
            if self.interrupted:
                error = CallbackError(kind="transient", message="trainer stopped (SIGTERM); run it again")
            else:
                state = "cancelled"
            log.info("batch inference stopped", extra={"interrupted": self.interrupted})
        except Exception as exc:
            message = f"{type(exc).__name__}: {exc}"
            if type(exc).__name__ == "OutOfMemoryError":
                message = f"{OOM_MESSAGE} ({message})"
            error = CallbackError(kind=classify(exc), message=message[:2000])
            log.exception("batch inference failed", extra={"error_kind": error.kind})
        finally:
            self._stop_heartbeat.set()
            if heartbeat is not None:
                heartbeat.join(timeout=15)
        return self._finish(state, error, {}, metrics)

    def _source(self, spec: BatchInference, scratch: Path) -> tuple[list[SourceImage], Path]:
        source = parse_s3_uri(self.spec.dataset_uri)
        if spec.source == "zip":
            archive = download_file(self.s3, source, scratch / "images.zip")
            return zip_images(archive), archive
        manifest_path = download_file(self.s3, source.join("manifest.json"), scratch / "manifest.json")
        manifest = json.loads(manifest_path.read_bytes())
        archive_name = PurePosixPath(str(manifest.get("archive", "")))
        if archive_name.is_absolute() or ".." in archive_name.parts or not archive_name.parts:
            raise UserError(f"the dataset manifest names an unsafe archive {str(archive_name)!r}")
        archive = download_file(self.s3, source.join(str(archive_name)), scratch / "archive.zip")
        return manifest_images(manifest), archive

    def _predict_all(
        self, model: Any, spec: BatchInference, decoded: Prefetcher
    ) -> tuple[list[dict[str, Any]], list[Decoded]]:
        """Predict the decoded images in order, a group of one size per call of the model
        (`groups`). A row's `inference_ms` is its share of that call's time (decoding happened
        beside it, in the prefetcher's thread)."""
        rows: list[dict[str, Any]] = []
        gallery: list[Decoded] = []
        for group in groups(decoded, PREDICT_BATCH):
            if self.is_cancelled():
                raise JobCancelled("cancel requested")
            if group[0][0] is None:  # unreadable: its row says why
                rows.append(group[0][1])
                self.epoch = len(rows)
                continue
            started = time.perf_counter()
            results = model.predict_many([image for image, _row in group], spec.conf)
            share_ms = round((time.perf_counter() - started) * 1000 / len(group), 2)
            for (image, row), result in zip(group, results, strict=True):
                for key in ("boxes", "probabilities"):
                    if key in result:
                        result[key] = result[key][: spec.max_results]
                row.update(width=image.width, height=image.height, **result, inference_ms=share_ms)
                if len(gallery) < spec.gallery_size:
                    gallery.append((image, row))
                rows.append(row)
            self.epoch = len(rows)  # heartbeats carry it: images done
        return rows, gallery

    def _warm_up(self, model: Any, spec: BatchInference, images: list[SourceImage], archive: Path) -> None:
        """One untimed prediction on the first readable image: the framework sets its predictor up
        on the first call (a second or more on a CPU), which is not the loop's per-image cost that
        `images_per_s` and each row's `inference_ms` report."""
        for image, _row in self._decoded(images[:WARM_UP_TRIES], archive):
            if image is not None:
                model.predict(image, spec.conf)
                return

    @staticmethod
    def _decoded(images: list[SourceImage], archive: Path) -> Iterator[Decoded]:
        """(PIL image or None, the row so far) per image; an unreadable one gets an `error`."""
        from PIL import Image

        with zipfile.ZipFile(archive) as zf:
            for source in images:
                row: dict[str, Any] = {"image": source.name}
                if source.split:
                    row["split"] = source.split
                try:
                    info = zf.getinfo(source.name)
                    if info.file_size > MAX_ENTRY_BYTES:
                        raise ValueError(f"larger than {MAX_ENTRY_BYTES} bytes")
                    with Image.open(io.BytesIO(zf.read(info))) as opened:
                        image = opened.convert("RGB")
                except KeyError:
                    row["error"] = "not in the archive"
                    yield None, row
                    continue
                except Exception as exc:  # one unreadable file is a row, not a failed job
                    row["error"] = f"not a readable image ({type(exc).__name__}: {exc})"[:300]
                    yield None, row
                    continue
                yield image, row

    def _upload_gallery(self, gallery: list[Decoded]) -> list[dict[str, Any]]:
        items = []
        for index, (image, row) in enumerate(gallery):
            png = io.BytesIO()
            draw(image, row).save(png, format="PNG")
            key = GALLERY_KEY.format(index=index, stem=PurePosixPath(row["image"]).stem[:60])
            uri = upload_bytes(self.s3, png.getvalue(), self.output.join(key), "image/png")
            found = row.get("boxes") or row.get("probabilities", [])[:1]
            items.append({"image": row["image"], "drawn_uri": uri, "predictions": found[:5]})
        return items

    def _upload_results(self, rows: list[dict[str, Any]], summary: dict[str, Any]) -> None:
        """JSONL and CSV first, the summary last: a summary in storage means the rest is there."""
        jsonl = "".join(json.dumps(row, separators=(",", ":")) + "\n" for row in rows).encode()
        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(csv_row(row) for row in rows)
        for name, body, content_type in (
            ("predictions_jsonl", jsonl, "application/x-ndjson"),
            ("predictions_csv", text.getvalue().encode(), "text/csv"),
        ):
            self.uploaded[name] = upload_bytes(
                self.s3, body, self.output.join(OUTPUT_KEYS[name]), content_type
            )
        self.uploaded["inference_summary"] = upload_json(
            self.s3, summary, self.output.join(OUTPUT_KEYS["inference_summary"])
        )
