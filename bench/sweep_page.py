"""The sweep page with many finished trials (not a timed test): a sweep of 200 trials (most
complete, some pruned) written straight into the database and its Optuna study, then the time
to interactive of `/sweeps/{id}` in headless Chromium: every trial listed, the optimisation
history, parallel coordinates and importances drawn, and "Train best" hydrated. Starts its own
stack. Target: under 2 s. Usage:

    python bench/sweep_page.py [--trials 200] [--epochs 20] [--repeat 5]
"""

from __future__ import annotations

import argparse
import math
import random
import time

from _stack import chromium, running_stack, signed_in, summary
from playwright.sync_api import Page

from tests.utils.browser import HYDRATED
from tests.utils.stack import Api


def insert_sweep(api: Api, username: str, trials: int, epochs: int) -> int:
    """A finished sweep: its row, one succeeded (or pruned and cancelled) job per trial with its
    per-epoch metrics, the study's trials with values and intermediate values, and the
    importances the worker would have saved with the study."""
    import optuna
    from sqlalchemy import insert
    from sqlmodel import select

    from services.domain import sweeps
    from services.domain.models import Job, JobMetric, Sweep, SweepState, User, utcnow
    from services.infra.db import session_scope
    from services.infra.signing import new_secret

    pid = api.project_id()
    version = api.datasets(pid)[-1]["id"]
    space = {
        "epochs": {"type": "fixed", "value": epochs},
        "lr0": {"type": "float", "low": 1e-4, "high": 0.1, "log": True},
        "momentum": {"type": "float", "low": 0.6, "high": 0.98, "log": False},
        "optimizer": {"type": "choice", "choices": ["SGD", "AdamW", "RAdam"]},
    }
    rng = random.Random(5)
    now = utcnow()
    with session_scope() as session:
        user_id = session.exec(select(User.id).where(User.username == username)).one()
        sweep = Sweep(
            project_id=pid,
            dataset_version_id=version,
            created_by=user_id,
            name="bench sweep",
            framework="ultralytics",
            task="detect",
            model="yolo11n.yaml",
            search_space=space,
            objective="map50_95",
            n_trials=trials,
            state=SweepState.finished,
            finished_at=now,
        )
        session.add(sweep)
        session.flush()
        sweep_id = int(sweep.id or 0)
        sweep.study_name = sweeps.study_name(sweep_id)
    study = optuna.create_study(
        study_name=sweeps.study_name(sweep_id), storage=sweeps.storage(), direction="maximize"
    )
    distributions = sweeps.distributions(space)
    plan = []
    for number in range(trials):
        params = {
            "lr0": math.exp(rng.uniform(math.log(1e-4), math.log(0.1))),
            "momentum": rng.uniform(0.6, 0.98),
            "optimizer": rng.choice(["SGD", "AdamW", "RAdam"]),
        }
        quality = 0.6 - 0.08 * abs(math.log10(params["lr0"]) + 2) + 0.1 * (params["momentum"] - 0.8)
        pruned = rng.random() < 0.3
        ran = rng.randint(2, 5) if pruned else epochs
        curve = {e: max(0.0, quality * (1 - math.exp(-0.25 * (e + 1)))) for e in range(ran)}
        trial = optuna.trial.create_trial(
            params=params,
            distributions=distributions,
            value=None if pruned else max(curve.values()),
            intermediate_values=curve,
            state=optuna.trial.TrialState.PRUNED if pruned else optuna.trial.TrialState.COMPLETE,
        )
        study.add_trial(trial)
        plan.append((number, params, pruned, curve))
    with session_scope() as session:  # as the worker's step does when a trial finishes
        row = session.get(Sweep, sweep_id)
        assert row is not None
        sweeps.save_importances(row, study.get_trials(deepcopy=False))
    with session_scope() as session:
        jobs = [
            {
                "project_id": pid,
                "dataset_version_id": version,
                "created_by": user_id,
                "name": f"bench sweep · trial {number}",
                "framework": "ultralytics",
                "task": "detect",
                "model": "yolo11n.yaml",
                "hyperparameters": {"epochs": epochs, **params},
                "device": "cpu",
                "state": "cancelled" if pruned else "succeeded",
                "attempt": 1,
                "callback_secret": new_secret(),
                "current_epoch": len(curve) - 1,
                "total_epochs": epochs,
                "artifacts": {},
                "log_tail": [],
                "created_at": now,
                "finished_at": now,
                "sweep_id": sweep_id,
                "sweep_trial": number,
                "pruned_epoch": len(curve) - 1 if pruned else None,
            }
            for number, params, pruned, curve in plan
        ]
        session.execute(insert(Job), jobs)
        ids = dict(session.exec(select(Job.sweep_trial, Job.id).where(Job.sweep_id == sweep_id)).all())
        rows = [
            {"job_id": ids[number], "epoch": e, "metrics": {"map50_95": v}, "created_at": now}
            for number, _params, _pruned, curve in plan
            for e, v in curve.items()
        ]
        session.execute(insert(JobMetric), rows)
    return sweep_id


def open_sweep(page: Page, url: str, trials: int) -> float:
    """Navigation start -> every trial listed, the three charts drawn, "Train best" hydrated."""
    start = time.perf_counter()
    page.goto(url, wait_until="commit")
    page.wait_for_function(
        "n => document.querySelectorAll('#trials-table tbody tr').length === n"
        " && !!document.querySelector('#history-chart .main-svg')"
        " && !!document.querySelector('#parallel-chart .main-svg')"
        " && !!document.querySelector('#importance-chart .main-svg')",
        arg=trials,
        polling=20,
        timeout=60_000,
    )
    page.wait_for_function(HYDRATED, arg="#train-best", polling=20)
    return time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--screenshot", default="", help="save a PNG of the loaded page here")
    args = parser.parse_args()
    with running_stack() as (stack, api):
        began = time.perf_counter()
        sweep_id = insert_sweep(api, stack.username, args.trials, args.epochs)
        print(f"inserted a sweep of {args.trials} trials in {time.perf_counter() - began:.1f} s")
        url = f"{stack.web_url}/sweeps/{sweep_id}"
        times = []
        with chromium() as browser:
            for rep in range(args.repeat + 1):  # one warm-up, then fresh contexts
                page = signed_in(browser, stack, "/")
                shown = open_sweep(page, url, args.trials)
                if args.screenshot and not rep:
                    page.screenshot(path=args.screenshot, full_page=True)
                page.context.close()
                if rep:
                    times.append(shown)
        print(summary(f"sweep page TTI ({args.trials} finished trials)", times, target_s=2.0))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
