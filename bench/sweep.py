"""The same sweep with and without its pruner (not a timed test): real trials on the sample
dataset through the whole stack, run one after the other on one stack. Prints, for each, the
epochs trained over all trials, the wall time from creating the sweep to its end, and the best
objective reached. Usage:

    python bench/sweep.py [--trials 12] [--epochs 6] [--imgsz 64] [--pruner median]

Both sweeps draw the same parameters (TPE with the same seed, so as long as no trial is pruned
they ask the same points); the pruner's sweep stops the trials that fall below the median early.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _stack import running_stack

from services.runtime import sample_data
from tests.utils.stack import Api

OBJECTIVE = "map50"


def upload(api: Api) -> int:
    pid = api.project_id()
    data = sample_data.yolo_zip(train=48, val=16, seed=21)
    response = api.http.post(
        f"/projects/{pid}/datasets",
        data={"name": "bench-sweep"},
        files={"file": ("shapes.zip", data, "application/zip")},
    )
    response.raise_for_status()
    return int(response.json()["id"])


def run_sweep(api: Api, version_id: int, args: argparse.Namespace, pruner: str) -> dict[str, Any]:
    pid = api.project_id()
    body = {
        "dataset_version_id": version_id,
        "name": f"bench {pruner}",
        "search_space": {
            "epochs": {"type": "fixed", "value": args.epochs},
            "imgsz": {"type": "fixed", "value": args.imgsz},
            "batch": {"type": "fixed", "value": 16},
            "optimizer": {"type": "fixed", "value": "SGD"},
            "lr0": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
            "momentum": {"type": "float", "low": 0.6, "high": 0.98},
        },
        "objective": OBJECTIVE,
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
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--imgsz", type=int, default=64)
    parser.add_argument("--pruner", default="median", choices=["median", "hyperband"])
    args = parser.parse_args()
    with running_stack() as (_stack, api):
        version_id = upload(api)
        results = [run_sweep(api, version_id, args, pruner) for pruner in (args.pruner, "none")]
    print(f"{args.trials} trials x up to {args.epochs} epochs, imgsz {args.imgsz}, objective {OBJECTIVE}")
    for r in results:
        best = "none" if r["best"] is None else f"{r['best']:.4f}"
        print(
            f"pruner={r['pruner']:<9} state={r['state']} epochs trained={r['epochs']:>3} "
            f"wall={r['wall_s']:.0f} s best {OBJECTIVE}={best} "
            f"(complete {r['complete']}, pruned {r['pruned']})"
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
