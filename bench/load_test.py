"""Many concurrent users browsing the running app, with locust (not a timed test).

Starts the whole stack (`vtp up`), seeds a project with finished runs and per-epoch metrics, makes
one account with a personal API token per simulated user (all project members), then runs locust
headless against it on this machine (locust shares the cores with the app) and prints each
request's p50/p95 and the error rate. Usage:

    python bench/load_test.py [--users 200] [--spawn-rate 20] [--duration 90] [--runs 100] [--epochs 50]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from _stack import ROOT, running_stack
from compare_page import insert_runs


def seed_users(project_id: int, count: int) -> list[str]:
    """`count` viewers of the project, each with a personal API token (created in the database)."""
    from services.domain import auth, tokens
    from services.domain.models import Membership, Role
    from services.infra.db import session_scope

    secrets: list[str] = []
    password_hash = auth.hash_password("load-test-password-1")  # one argon2 hash, not 200
    with session_scope() as session:
        for i in range(count):
            user = auth.create_user(session, username=f"load-{i:03d}", password="load-test-password-1")
            user.password_hash = password_hash
            session.add(Membership(project_id=project_id, user_id=user.id, role=Role.viewer))
            _row, secret = tokens.create_personal_token(session, user=user, name="load", expires_in_days=1)
            secrets.append(secret)
    return secrets


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--spawn-rate", type=int, default=20)
    parser.add_argument("--duration", type=int, default=90, help="seconds of load after the ramp-up starts")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=50)
    args = parser.parse_args()
    with running_stack() as (stack, api), tempfile.TemporaryDirectory(prefix="vtp-load-") as tmp:
        pid = insert_runs(api, stack.username, args.runs, args.epochs)
        began = time.perf_counter()
        secrets = seed_users(pid, args.users)
        print(
            f"seeded {args.runs} runs x {args.epochs} epochs and {args.users} users "
            f"in {time.perf_counter() - began:.1f} s"
        )
        token_file = Path(tmp) / "tokens.json"
        token_file.write_text(json.dumps(secrets))
        prefix = Path(tmp) / "load"
        command = [
            str(Path(sys.executable).parent / "locust"),
            "-f", str(ROOT / "bench" / "locustfile.py"),
            "--headless", "--only-summary",
            "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration}s",
            "--host", stack.web_url, "--csv", str(prefix),
        ]  # fmt: skip
        env = {"VTP_LOAD_TOKENS": str(token_file), "VTP_LOAD_PROJECT": str(pid)}
        subprocess.run(command, env={**os.environ, **env}, check=False, capture_output=True)
        rows = list(csv.DictReader((prefix.parent / "load_stats.csv").open()))
        failures = list(csv.DictReader((prefix.parent / "load_failures.csv").open()))
        errors_logged = Counter(
            line.split("Error:", 1)[0][-80:] + "Error: " + line.split("Error:", 1)[1][:120]
            for line in stack.log_path.read_text(errors="replace").splitlines()
            if line.startswith("[web]") and "Error:" in line
        )
    print(f"{args.users} users, spawn {args.spawn_rate}/s, {args.duration} s, app and locust on this machine")
    print(f"{'request':<18} {'count':>7} {'fail':>6} {'p50 ms':>7} {'p95 ms':>7} {'p99 ms':>7} {'req/s':>7}")
    for row in rows:
        print(
            f"{row['Name']:<18} {row['Request Count']:>7} {row['Failure Count']:>6} "
            f"{row['50%']:>7} {row['95%']:>7} {row['99%']:>7} {float(row['Requests/s']):>7.1f}"
        )
    total = next(row for row in rows if row["Name"] == "Aggregated")
    errors = int(total["Failure Count"]) / max(1, int(total["Request Count"]))
    print(f"overall: p95 {total['95%']} ms, error rate {errors:.2%}")
    for row in failures[:8]:
        print(f"  failed {row['Occurrences']}x {row['Method']} {row['Name']}: {row['Error'][:160]}")
    for line, count in errors_logged.most_common(5):
        print(f"  web log, {count}x: {line}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
