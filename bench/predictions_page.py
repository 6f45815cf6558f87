"""Compare-predictions page with 500 images x 4 models (not a timed test).

A real 500-image validation split is uploaded; four succeeded jobs are written straight into the
database, each pointing at a synthetic predictions document in S3 made from the ground truth
(boxes jittered, some dropped, some false ones added, so TP / FP / missed all occur). Then, in
headless Chromium, time to interactive of `/projects/{id}/predictions?jobs=a,b,c,d`: navigation
start -> the first page of images drawn with every thumbnail loaded and the filters hydrated.

- cold: the first visit (the server judges 4 x 500 images and renders the page's thumbnails);
- warm: later visits in fresh browser contexts (judged sets cached, thumbnails stored);
- filter: "models disagree" ticked -> the filtered page drawn;
- server: `services.actions.predictions.compare` for one page, in this process: first call
  (read and judge the four documents) and later calls (cached), to split the cold time.

Starts its own stack. Usage:

    python bench/predictions_page.py [--images 500] [--models 4] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import time
from datetime import timedelta
from typing import Any

from _stack import chromium, running_stack, signed_in, summary
from playwright.sync_api import Page

from services.runtime import sample_data
from tests.utils.browser import HYDRATED
from tests.utils.stack import Api, StackProcess


def synthetic_doc(manifest: dict[str, Any], rng: random.Random, skill: float) -> dict[str, Any]:
    """A predictions document for the val split as a model of `skill` (0..1) might have made."""
    images = []
    nc = len(manifest["classes"])
    for image in manifest["images"]:
        if image["split"] != "val":
            continue
        w, h = image["width"], image["height"]
        truth, preds = [], []
        for cls, cx, cy, bw, bh in image["labels"]:
            box = [(cx - bw / 2) * w, (cy - bh / 2) * h, (cx + bw / 2) * w, (cy + bh / 2) * h]
            truth.append({"class_id": int(cls), "box": [round(v, 2) for v in box]})
            if rng.random() < skill:
                jitter = [v + rng.uniform(-2, 2) for v in box]
                wrong = rng.random() > skill
                cls_out = (int(cls) + 1) % nc if wrong else int(cls)
                preds.append({"class_id": cls_out, "score": round(rng.uniform(0.3, 1), 3), "box": jitter})
        if rng.random() > skill:
            x, y = rng.uniform(0, w - 10), rng.uniform(0, h - 10)
            preds.append({"class_id": rng.randrange(nc), "score": 0.3, "box": [x, y, x + 10, y + 10]})
        images.append({"path": image["path"], "width": w, "height": h, "truth": truth, "predictions": preds})
    return {
        "format": 1,
        "task": "detect",
        "split": "val",
        "classes": manifest["classes"],
        "conf": 0.25,
        "total_images": len(images),
        "images": images,
    }


def insert_jobs(stack: StackProcess, api: Api, images: int, models: int) -> tuple[int, list[int]]:
    """Upload a dataset with `images` val images; write `models` succeeded jobs on it whose
    predictions documents are synthetic."""
    os.environ["VTP_S3_ENDPOINT_URL"] = stack.s3_url
    from sqlmodel import select

    from services.domain.datasets.queries import load_manifest
    from services.domain.models import DatasetVersion, Job, User, utcnow
    from services.infra import storage
    from services.infra.db import session_scope
    from services.infra.settings import get_settings
    from services.infra.signing import new_secret

    get_settings.cache_clear()
    storage.s3_client.cache_clear()
    pid = api.project_id()
    data = sample_data.yolo_zip(train=8, val=images, size=96, seed=5)
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": "bench-predictions"},
        files={"file": ("shapes.zip", data, "application/zip")},
        timeout=300,
    )
    response.raise_for_status()
    version_id = response.json()["id"]
    rng = random.Random(11)
    ids = []
    now = utcnow()
    with session_scope() as session:
        version = session.get(DatasetVersion, version_id)
        assert version is not None
        manifest = load_manifest(version.uri)
        user_id = session.exec(select(User.id).where(User.username == stack.username)).one()
        for m in range(models):
            job = Job(
                project_id=pid,
                dataset_version_id=version_id,
                created_by=user_id,
                name=f"model-{m}",
                framework="ultralytics",
                task="detect",
                model="yolo11n.yaml",
                hyperparameters={"epochs": 10},
                device="cpu",
                state="succeeded",
                callback_secret=new_secret(),
                started_at=now - timedelta(minutes=5),
                finished_at=now,
            )
            session.add(job)
            session.flush()
            key = storage.job_prefix(pid, int(job.id or 0)) + "artifacts/predictions/val.json"
            doc = synthetic_doc(manifest, rng, skill=0.55 + 0.1 * m)
            job.artifacts = {"predictions_val": storage.put_bytes(key, json.dumps(doc).encode())}
            session.add(job)
            ids.append(int(job.id or 0))
    return pid, ids


READY = (
    "() => { const rows = document.querySelectorAll('#prediction-grid .prediction-row');"
    " const imgs = [...document.querySelectorAll('#prediction-grid img')];"
    " return rows.length > 0 && imgs.length > 0 && imgs.every(i => i.complete && i.naturalWidth > 0); }"
)


def open_page(page: Page, url: str) -> float:
    """Navigation start -> first page drawn, thumbnails loaded, filters hydrated."""
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(READY, polling=20, timeout=120_000)
    page.wait_for_function(HYDRATED, arg="#prediction-disagree", polling=20)
    return time.perf_counter() - start


def filter_disagree(page: Page) -> float:
    before = page.inner_text("#prediction-count")
    start = time.perf_counter()
    page.click("#prediction-disagree")
    page.wait_for_function(
        "t => { const c = document.querySelector('#prediction-count')?.innerText; return c && c !== t; }",
        arg=before,
        polling=20,
    )
    page.wait_for_function(READY, polling=20)
    return time.perf_counter() - start


def server_side(
    stack: StackProcess, pid: int, ids: list[int], repeat: int
) -> tuple[list[float], list[float]]:
    """One page of `compare` in this process: the first call judges, later calls hit the cache."""
    from sqlmodel import select

    from services.actions import predictions
    from services.actions.core import Actor
    from services.domain.models import User
    from services.infra.db import session_scope

    with session_scope() as session:
        user_id = session.exec(select(User.id).where(User.username == stack.username)).one()
    actor = Actor(user_id=user_id, username=stack.username)
    first, later = [], []
    for rep in range(repeat + 1):
        start = time.perf_counter()
        page = predictions.compare(actor, project_id=pid, job_ids=ids, offset=12 * rep, limit=12)
        (later if rep else first).append(time.perf_counter() - start)
        assert len(page.rows) == 12
    return first, later


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--models", type=int, default=4)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with running_stack() as (stack, api):
        began = time.perf_counter()
        pid, ids = insert_jobs(stack, api, args.images, args.models)
        spent = time.perf_counter() - began
        print(f"dataset of {args.images} val images and {args.models} jobs in {spent:.1f} s")
        url = f"{stack.web_url}/projects/{pid}/predictions?jobs={','.join(map(str, ids))}"
        cold, warm, filtered = [], [], []
        with chromium() as browser:
            for rep in range(args.repeat + 1):
                page = signed_in(browser, stack, "/")
                shown = open_page(page, url)
                (warm if rep else cold).append(shown)
                if rep:
                    filtered.append(filter_disagree(page))
                page.context.close()
        first, later = server_side(stack, pid, ids, args.repeat)
        print(f"images per page: 12 of {args.images}; models: {args.models}")
        print(summary("predictions page TTI, cold (judging + first thumbnails)", cold, target_s=2.0))
        print(summary("predictions page TTI, warm", warm, target_s=2.0))
        print(summary("'models disagree' click -> filtered page drawn", filtered, target_s=2.0))
        print(summary("server: compare() first call (judges 4 documents)", first, target_s=2.0))
        print(summary("server: compare() cached, next page (renders its 12 thumbnails)", later, target_s=2.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
