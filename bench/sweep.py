"""The same sweep with and without its pruner (not a timed test): real trials through the whole
stack, run one after the other on one stack. Prints, for each, the epochs trained over all trials,
the wall time from creating the sweep to its end, and the best objective reached. Usage:

    python bench/sweep.py [--task classify|detect] [--trials 12] [--epochs E] [--imgsz N] [--pruner median]

Both sweeps draw the same parameters (TPE with the same seed, so as long as no trial is pruned
they ask the same points); the pruner's sweep stops the trials that fall below the median early.

The default task is classification of real handwritten digits (scikit-learn's `load_digits`,
300 training and 100 validation images, a timm resnet18 at 32 px, objective `top1`): in a few
epochs a good learning rate reaches a clearly non-zero accuracy and a poor one stays near chance,
so the pruner has something to cut. `--task detect` sweeps YOLO on the sample shapes instead; at
these sizes and epochs every detection trial scores mAP50 0 and the pruner never fires, which is
why it is not the default.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _stack import running_stack

from services.runtime import sample_data
from tests.datasets.factories import digits_imagefolder, zip_bytes
from tests.utils.stack import Api

# task -> (framework, model, objective, default epochs, default imgsz, fixed hyperparameters)
TASKS: dict[str, tuple[str, str, str, int, int, dict[str, Any]]] = {
    "classify": ("timm", "resnet18", "top1", 8, 32, {"batch": 32, "optimizer": "sgd", "fliplr": 0.0}),
    "detect": ("ultralytics", "yolo11n.yaml", "map50", 6, 64, {"batch": 16, "optimizer": "SGD"}),
}


def upload(api: Api, task: str) -> int:
    pid = api.project_id()
    if task == "classify":
        data = zip_bytes(digits_imagefolder(per_class=40))  # 30 train + 10 val per digit
    else:
        data = sample_data.yolo_zip(train=48, val=16, seed=21)
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": f"bench-sweep-{task}"},
        files={"file": (f"{task}.zip", data, "application/zip")},
    )
    response.raise_for_status()
    return int(response.json()["id"])


def run_sweep(api: Api, version_id: int, args: argparse.Namespace, pruner: str) -> dict[str, Any]:
    pid = api.project_id()
    framework, model, objective, _, _, fixed = TASKS[args.task]
    space: dict[str, dict[str, Any]] = {
        "epochs": {"type": "fixed", "value": args.epochs},
        "imgsz": {"type": "fixed", "value": args.imgsz},
        **{name: {"type": "fixed", "value": value} for name, value in fixed.items()},
        "lr0": {"type": "float", "low": 1e-5, "high": 0.1, "log": True},
    }
    if args.task == "classify":
        space["weight_decay"] = {"type": "float", "low": 0.0, "high": 0.1}
    else:
        space["momentum"] = {"type": "float", "low": 0.6, "high": 0.98}
    body = {
        "dataset_version_id": version_id,
        "name": f"bench {pruner}",
        "framework": framework,
        "task": args.task,
        "model": model,
        "search_space": space,
        "objective": objective,
        "direction": "maximize",
        "n_trials": args.trials,
        "parallelism": 1,
        "sampler": "tpe",
        "pruner": pruner,
        "seed": 7,
    }
    began = time.perf_counter()
    sweep = api.http.post(f"/projects/{pid}/sweeps", json=body).raise_for_status().json()
    while True:
        found = api.http.get(f"/projects/{pid}/sweeps/{sweep['id']}").raise_for_status().json()
        if found["state"] != "running":
            break
        time.sleep(2)
    wall = time.perf_counter() - began
    jobs = api.http.get(f"/projects/{pid}/jobs").raise_for_status().json()
    trial_jobs = [j for j in jobs if j["sweep_id"] == sweep["id"]]
    epochs = 0
    for job in trial_jobs:
        detail = api.http.get(f"/projects/{pid}/jobs/{job['id']}").raise_for_status().json()
        epochs += len(detail["metrics"])
    states = [t["state"] for t in found["trials"]]
    return {
        "pruner": pruner,
        "state": found["state"],
        "wall_s": wall,
        "epochs": epochs,
        "best": found["best_value"],
        "pruned": states.count("PRUNED"),
        "complete": states.count("COMPLETE"),
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--task", default="classify", choices=sorted(TASKS))
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=None, help="default: 8 classify, 6 detect")
    parser.add_argument("--imgsz", type=int, default=None, help="default: 32 classify, 64 detect")
    parser.add_argument("--pruner", default="median", choices=["median", "hyperband"])
    args = parser.parse_args()
    framework, model, objective, epochs, imgsz, _ = TASKS[args.task]
    args.epochs = args.epochs or epochs
    args.imgsz = args.imgsz or imgsz
    print(
        f"{args.trials} trials of {framework} {model} ({args.task}) x up to {args.epochs} epochs, "
        f"imgsz {args.imgsz}, objective {objective}",
        flush=True,
    )
    results = []
    with running_stack() as (_stack, api):
        version_id = upload(api, args.task)
        for pruner in (args.pruner, "none"):
            r = run_sweep(api, version_id, args, pruner)
            results.append(r)
            best = "none" if r["best"] is None else f"{r['best']:.4f}"
            print(
                f"pruner={r['pruner']:<9} state={r['state']} epochs trained={r['epochs']:>3} "
                f"wall={r['wall_s']:.0f} s best {objective}={best} "
                f"(complete {r['complete']}, pruned {r['pruned']})",
                flush=True,
            )
    with_pruner, without = results
    if without["epochs"]:
        print(
            f"ratio with/without pruner: epochs {with_pruner['epochs'] / without['epochs']:.2f}, "
            f"wall {with_pruner['wall_s'] / without['wall_s']:.2f}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
