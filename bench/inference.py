"""Inference speed of the platform against plain Ultralytics, in one run (not a timed test).

On the whole local stack (`vtp up` on free ports): trains a small detector, then runs the same
model over the same images three ways and prints per-image latency p50/p95 and images/s:

  direct   `YOLO(best.pt).predict(image)` per image in a fresh process (the model file copied
           out of storage first), measured around the predict calls only; also 8 images per
           call (`predict(list)`), as the batch job calls the model, for reference;
  /predict the platform's REST playground, `POST /api/v1/projects/{p}/jobs/{j}/predict`, one
           image per request as a client sends them (upload, backend, trainer, answer);
  batch    a batch inference job over a zip of the images: per-image latency is the trainer's
           own timing of each predict (`inference_ms` in the JSON Lines); images/s both for the
           prediction loop and end to end (submit -> succeeded: queue, process start, model load,
           uploads).

Target: batch (loop) images/s >= 0.9x direct (one image per call, as a user's loop does). Usage:

    python bench/inference.py --images 64 --imgsz 160 --repeat 2
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._stack import running_stack  # noqa: E402
from services.runtime import sample_data  # noqa: E402
from tests.utils.stack import Api  # noqa: E402

DIRECT = """
import json, os, sys, time
from pathlib import Path
from PIL import Image
from trainer_runner.plugins.yolo import import_ultralytics, _train_imgsz
spec = json.loads(sys.argv[1])
YOLO = import_ultralytics(Path(spec["config_dir"]), os.cpu_count() or 1)
model = YOLO(spec["model"])
imgsz = _train_imgsz(model)
images = [Image.open(p).convert("RGB") for p in spec["images"]]
model.predict(images[0], imgsz=imgsz, conf=0.25, device="cpu", verbose=False)  # warm-up, as /predict's cache
latencies = []
started = time.perf_counter()
for image in images:
    t = time.perf_counter()
    model.predict(image, imgsz=imgsz, conf=0.25, device="cpu", verbose=False)
    latencies.append((time.perf_counter() - t) * 1000)
total = time.perf_counter() - started
batched = []
started = time.perf_counter()
for i in range(0, len(images), 8):  # what the batch job does: 8 images of one size per call
    t = time.perf_counter()
    model.predict(images[i : i + 8], imgsz=imgsz, conf=0.25, device="cpu", verbose=False)
    batched += [(time.perf_counter() - t) * 1000 / len(images[i : i + 8])] * len(images[i : i + 8])
batched_total = time.perf_counter() - started
found = {"latencies_ms": latencies, "total_s": total, "batched_ms": batched, "batched_s": batched_total}
print(json.dumps(found))
"""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _row(name: str, latencies: list[float], images_per_s: float) -> dict[str, Any]:
    return {
        "way": name,
        "p50_ms": round(_percentile(latencies, 0.5), 1),
        "p95_ms": round(_percentile(latencies, 0.95), 1),
        "images_per_s": round(images_per_s, 2),
    }


def _images(count: int, size: int) -> list[tuple[str, bytes]]:
    """`count` synthetic shape images as PNG bytes, from the same generator as the sample dataset."""
    data = sample_data.yolo_zip(train=count, val=0, size=size, seed=11)
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".png"))[:count]
        return [(n.rsplit("/", 1)[-1], zf.read(n)) for n in names]


def _train(api: Api, pid: int, imgsz: int) -> dict[str, Any]:
    data = sample_data.yolo_zip(train=32, val=8, size=imgsz, seed=3)
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": "bench-inference"},
        files={"file": ("shapes.zip", data, "application/zip")},
    )
    response.raise_for_status()
    job = api.start_job(pid, response.json()["id"], epochs=1, imgsz=imgsz)
    finished = api.wait_finished(pid, job["id"], timeout_s=900)
    assert finished["state"] == "succeeded", finished
    return finished


def _direct(model_path: Path, image_paths: list[Path], work: Path) -> list[dict[str, Any]]:
    spec = {
        "config_dir": str(work / "ultralytics"),
        "model": str(model_path),
        "images": [str(p) for p in image_paths],
    }
    out = subprocess.run(
        [sys.executable, "-c", DIRECT, json.dumps(spec)],
        capture_output=True,
        text=True,
        check=True,
        cwd=work,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(work)},
    )
    found = json.loads(out.stdout.strip().splitlines()[-1])
    return [
        _row("direct", found["latencies_ms"], len(image_paths) / found["total_s"]),
        _row("direct (8 per call)", found["batched_ms"], len(image_paths) / found["batched_s"]),
    ]


def _predict_api(api: Api, pid: int, job_id: int, images: list[tuple[str, bytes]]) -> dict[str, Any]:
    url = f"/projects/{pid}/jobs/{job_id}/predict"
    api.http.post(url, files={"image": images[0]}).raise_for_status()  # warm-up: model into the cache
    latencies = []
    started = time.perf_counter()
    for name, body in images:
        t = time.perf_counter()
        api.http.post(url, files={"image": (name, body, "image/png")}).raise_for_status()
        latencies.append((time.perf_counter() - t) * 1000)
    return _row("/predict", latencies, len(images) / (time.perf_counter() - started))


def _batch(api: Api, pid: int, job_id: int, images: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, body in images:
            zf.writestr(f"bench/{name}", body)
    started = time.perf_counter()
    response = api.http.post(
        f"/projects/{pid}/batch-inference/upload",
        data={"model": f"jobs/{job_id}"},
        files={"images": ("bench.zip", buffer.getvalue(), "application/zip")},
    )
    response.raise_for_status()
    batch = api.wait_finished(pid, response.json()["id"], timeout_s=900)
    wall = time.perf_counter() - started
    assert batch["state"] == "succeeded", batch
    results = api.http.get(f"/projects/{pid}/jobs/{batch['id']}/batch-results").raise_for_status().json()
    import httpx

    rows = [json.loads(x) for x in httpx.get(results["downloads"]["predictions_jsonl"]).text.splitlines()]
    latencies = [float(r["inference_ms"]) for r in rows]
    summary = results["summary"]
    return [
        _row("batch (loop)", latencies, float(summary["images_per_s"])),
        _row("batch (end to end)", latencies, len(images) / wall),
    ]


def _signed_in(stack: Any) -> Api:
    return Api(stack.api_url, stack.username, stack.password)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--imgsz", type=int, default=160)
    parser.add_argument("--repeat", type=int, default=1, help="rounds of the three ways, alternated")
    args = parser.parse_args()

    images = _images(args.images, args.imgsz)
    with running_stack() as (stack, api), tempfile.TemporaryDirectory(prefix="vtp-bench-inf-") as tmp:
        work = Path(tmp)
        pid = api.project_id()
        model = _train(api, pid, args.imgsz)
        print(f"trained job {model['id']} (1 epoch, imgsz {args.imgsz}); {len(images)} images", flush=True)
        import httpx

        files = {
            r["key"]: r["download_url"]
            for r in api.http.get(f"/projects/{pid}/jobs/{model['id']}/artifacts").json()
        }
        model_path = work / "best.pt"
        model_path.write_bytes(httpx.get(files["checkpoints/best.pt"]).content)
        image_paths = []
        for name, body in images:
            (work / name).write_bytes(body)
            image_paths.append(work / name)

        rounds: list[list[dict[str, Any]]] = []
        for round_index in range(args.repeat):
            direct_rows = _direct(model_path, image_paths, work)
            # A fresh sign-in per way: on a slow machine the access token may outlive a round.
            predict_row = _predict_api(_signed_in(stack), pid, model["id"], images)
            found = [*direct_rows, predict_row, *_batch(_signed_in(stack), pid, model["id"], images)]
            rounds.append(found)
            direct = found[0]["images_per_s"]
            print(f"\nround {round_index + 1}")
            print(f"{'way':<20}{'p50 ms':>10}{'p95 ms':>10}{'images/s':>12}{'x direct':>10}")
            for row in found:
                ratio = row["images_per_s"] / direct if direct else float("nan")
                print(
                    f"{row['way']:<20}{row['p50_ms']:>10}{row['p95_ms']:>10}{row['images_per_s']:>12}"
                    f"{ratio:>10.2f}"
                )
        if len(rounds) > 1:
            print("\nratio to direct images/s over rounds (median, min-max):")
            for index, row in enumerate(rounds[0]):
                ratios = [r[index]["images_per_s"] / r[0]["images_per_s"] for r in rounds]
                spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
                print(f"  {row['way']:<20} {statistics.median(ratios):.2f} ({spread})")


if __name__ == "__main__":
    main()
