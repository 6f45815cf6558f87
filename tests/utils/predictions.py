"""Succeeded jobs with a stored predictions document, written straight into the database and S3
(no training): the prediction views read nothing else. The documents come from the dataset's
own ground truth, so each verdict is known in advance."""

from __future__ import annotations

import json
import uuid
from typing import Any

from services.infra.db import session_scope


def truth_doc(manifest: dict[str, Any], *, miss_every: int = 0) -> dict[str, Any]:
    """A val predictions document that finds every object exactly (score 0.9), except on every
    `miss_every`-th val image (counting from 0), where it predicts nothing and so misses all."""
    images = []
    val = [image for image in manifest["images"] if image["split"] == "val"]
    for n, image in enumerate(val):
        w, h = image["width"], image["height"]
        truth = [
            {
                "class_id": int(c),
                "box": [(x - bw / 2) * w, (y - bh / 2) * h, (x + bw / 2) * w, (y + bh / 2) * h],
            }
            for c, x, y, bw, bh in image["labels"]
        ]
        blind = bool(miss_every) and n % miss_every == 0
        predictions = [] if blind else [{**t, "score": 0.9} for t in truth]
        images.append(
            {"path": image["path"], "width": w, "height": h, "truth": truth, "predictions": predictions}
        )
    return {
        "format": 1,
        "task": "detect",
        "split": "val",
        "classes": manifest["classes"],
        "conf": 0.25,
        "total_images": len(images),
        "images": images,
    }


def succeeded_job(
    *, project_id: int, version_id: int, user_id: int, doc: dict[str, Any] | None, state: str = "succeeded"
) -> int:
    """A job in `state` on the version, with `doc` stored as its val predictions (None: none stored)."""
    from services.domain.models import Job
    from services.infra import storage

    with session_scope() as session:
        job = Job(
            project_id=project_id,
            dataset_version_id=version_id,
            created_by=user_id,
            name=f"preds-{uuid.uuid4().hex[:6]}",
            framework="ultralytics",
            task="detect",
            model="yolo11n.yaml",
            state=state,
            callback_secret=uuid.uuid4().hex,
        )
        session.add(job)
        session.flush()
        job_id = int(job.id or 0)
        if doc is not None:
            key = storage.job_prefix(project_id, job_id) + "artifacts/predictions/val.json"
            job.artifacts = {"predictions_val": storage.put_bytes(key, json.dumps(doc).encode())}
            session.add(job)
        return job_id


def version_manifest(version_id: int) -> dict[str, Any]:
    from services.domain.datasets.queries import load_manifest
    from services.domain.models import DatasetVersion

    with session_scope() as session:
        version = session.get(DatasetVersion, version_id)
        assert version is not None
        return load_manifest(version.uri)
