"""Batch inference decodes images in a thread beside the model (`trainer_runner.batch.Prefetcher`):
the model gets every image in order, unreadable ones as rows with their error, a broken archive
as an error where the loop takes its next image, and a stopped run leaves no thread behind."""

from __future__ import annotations

import io
import itertools
import os
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from trainer_runner.batch import BatchRunner, Decoded, Prefetcher, SourceImage, zip_images


def _archive(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for i in range(count):
            buffer = io.BytesIO()
            Image.new("RGB", (16 + i, 12), (i * 9 % 256, 80, 160)).save(buffer, format="PNG")
            zf.writestr(f"pics/{i:03d}.png", buffer.getvalue())
        zf.writestr("pics/broken.png", b"not a png")
    return path


def test_every_image_arrives_in_order_with_unreadable_ones_as_rows(tmp_path: Path) -> None:
    archive = _archive(tmp_path / "pics.zip", 20)
    images = [*zip_images(archive), SourceImage("pics/missing.png", "val")]
    with Prefetcher(lambda: BatchRunner._decoded(images, archive), depth=3) as decoded:
        got = list(decoded)
    assert [row["image"] for _image, row in got] == [i.name for i in images]
    sizes = [image.size for image, _row in got[:20]]
    assert sizes == [(16 + i, 12) for i in range(20)]
    (broken_image, broken), (missing_image, missing) = got[20:]
    assert broken_image is None and "not a readable image" in broken["error"]
    assert missing_image is None and missing == {
        "image": "pics/missing.png",
        "split": "val",
        "error": "not in the archive",
    }


def test_a_broken_archive_is_raised_in_the_loop(tmp_path: Path) -> None:
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"not a zip")
    source = [SourceImage("a.png", "")]
    with Prefetcher(lambda: BatchRunner._decoded(source, bad)) as decoded, pytest.raises(zipfile.BadZipFile):
        next(iter(decoded))


def test_stopping_early_ends_the_thread_and_reads_no_further(tmp_path: Path) -> None:
    produced: list[int] = []

    def endless() -> Iterator[Decoded]:
        n = 0
        while True:  # a source that never ends: only close() stops it
            produced.append(n)
            yield None, {"image": str(n)}
            n += 1

    before = threading.active_count()
    prefetcher = Prefetcher(endless, depth=2)
    taken = [row["image"] for _image, row in itertools.islice(prefetcher, 5)]
    prefetcher.close()
    assert taken == ["0", "1", "2", "3", "4"]
    assert threading.active_count() == before  # the decode thread is gone
    # Read ahead by the queue's depth at most: 5 taken, 2 queued, 1 waiting for room, and 1 more
    # made when close() makes room before the thread sees it was stopped.
    assert len(produced) <= 5 + 2 + 1 + 1


def test_images_go_to_the_model_in_runs_of_one_size_and_keep_their_order() -> None:
    """Up to `limit` consecutive images of one size per call; a new size or an unreadable image
    ends a run, and the unreadable one comes alone, in its place."""
    from trainer_runner.batch import groups

    sizes = [(8, 8)] * 5 + [(9, 8)] * 2 + [None] + [(9, 8)] * 2 + [(8, 8)]
    decoded: list[Decoded] = [
        (None if size is None else Image.new("RGB", size), {"image": f"{i}.png"})
        for i, size in enumerate(sizes)
    ]
    runs = list(groups(decoded, limit=3))
    names = [[row["image"] for _image, row in run] for run in runs]
    assert names == [
        ["0.png", "1.png", "2.png"],
        ["3.png", "4.png"],
        ["5.png", "6.png"],
        ["7.png"],
        ["8.png", "9.png"],
        ["10.png"],
    ]
    assert runs[3][0][0] is None


_ALONE_AND_TOGETHER = """
import json, sys
from pathlib import Path
from PIL import Image
from trainer_runner.plugins.yolo import UltralyticsModel, import_ultralytics
model = UltralyticsModel(import_ultralytics(Path(sys.argv[1]), 2)("yolo11n-cls.yaml"), "cpu")
images = [Image.new("RGB", (40, 30), (i * 60, 255 - i * 50, 90)) for i in range(4)]
print(json.dumps({
    "together": model.predict_many(images, 0.25),
    "alone": [model.predict(image, 0.25) for image in images],
}))
"""


@pytest.mark.trainer
def test_a_run_of_images_predicts_what_each_image_alone_does(tmp_path: Path) -> None:
    """Batching must not change a prediction: the same letterboxing, the same scores. (In a
    child process: importing Ultralytics patches PIL for the whole interpreter.)"""
    import json
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", _ALONE_AND_TOGETHER, str(tmp_path)],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(found["together"]) == 4
    for got, want in zip(found["together"], found["alone"], strict=True):
        scores = {p["class_id"]: p["score"] for p in want["probabilities"]}
        assert len(got["probabilities"]) == len(scores)
        for p in got["probabilities"]:
            assert abs(p["score"] - scores[p["class_id"]]) < 1e-4, p
