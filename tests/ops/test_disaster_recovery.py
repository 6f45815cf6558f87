"""Disaster recovery, as an operator lives it: back up a platform in use, lose it, restore the
backup into a new data directory, start the stack there, and carry on.

Prints the measured RPO/RTO inputs (backup, restore and start durations) for docs/runbook.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import boto3
import pytest

from tests.utils.stack import Api, StackProcess

pytestmark = [pytest.mark.ops, pytest.mark.timeout(1500)]
BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[2]
FAST_RECOVERY = {
    "VTP_HEARTBEAT_TIMEOUT_S": "6",
    "VTP_RECONCILE_INTERVAL_S": "2",
    # A checkpoint every epoch, so the job running at backup time has one to resume from.
    "TRAINER_CHECKPOINT_INTERVAL_S": "0",
}
COPIED = re.compile(r"(\d+) objects \((\d+) bytes\), (\d+) new objects copied, (\d+) already held")


def vtp(stack: StackProcess, *args: str) -> tuple[str, float]:
    began = time.monotonic()
    done = subprocess.run(
        [str(BIN / "vtp"), *args], env=stack.env(), cwd=ROOT, capture_output=True, text=True, timeout=600
    )
    took = time.monotonic() - began
    assert done.returncode == 0, f"vtp {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout, took


def counts(path: Path) -> dict[str, int]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: db.execute(f'SELECT count(*) FROM "{n}"').fetchone()[0] for n in names}
    finally:
        db.close()


def test_backup_while_training_then_restore_into_a_new_data_dir(tmp_path: Path, output_dir: Path) -> None:
    dest = tmp_path / "backups"
    old = StackProcess(
        data_dir=tmp_path / "old" / "data",
        trainer_dir=tmp_path / "old" / "trainer",
        log_path=output_dir / "stack-ops-old.log",
        extra_env=FAST_RECOVERY,
    )
    new = StackProcess(
        data_dir=tmp_path / "new" / "data",
        trainer_dir=tmp_path / "new" / "trainer",
        log_path=output_dir / "stack-ops-new.log",
        extra_env=FAST_RECOVERY,
    )
    old.start()
    try:
        api = Api(old.api_url, old.username, old.password)
        pid = api.project_id()
        api.http.post("/projects", json={"name": "Second project"}).raise_for_status()
        version = api.datasets(pid)[0]["id"]
        finished = api.wait_finished(pid, api.start_job(pid, version, epochs=1)["id"])
        assert finished["state"] == "succeeded", finished
        # Long enough to still be running through two backups on a fast machine; once it is shown
        # to resume after the restore it is cancelled, so a slow machine need not finish it.
        running = api.start_job(pid, version, epochs=40)
        deadline = time.monotonic() + 600
        while not api.job(pid, running["id"])["metrics"]:
            assert time.monotonic() < deadline, "training did not finish its first epoch"
            time.sleep(0.3)

        first_out, backup_s = vtp(old, "backup", str(dest))
        total, _, copied_first, _ = map(int, COPIED.search(first_out).groups())  # type: ignore[union-attr]
        assert copied_first == total > 0, first_out
        assert "1 job(s) were running" in first_out, first_out
        assert api.job(pid, running["id"])["state"] == "running", "the backup disturbed a running job"
        # Incremental: the second run copies only what the running job wrote since (its new
        # checkpoints, metrics and logs), not the dataset or the finished job again.
        second_out, second_s = vtp(old, "backup", str(dest), "--keep", "1")
        total2, _, copied_second, held = map(int, COPIED.search(second_out).groups())  # type: ignore[union-attr]
        assert held > 0 and copied_second < total2 and copied_second + held == total2, second_out
        snaps = sorted((dest / "snapshots").iterdir())
        assert len(snaps) == 1, "--keep 1 keeps one snapshot"
        manifest = json.loads((snaps[0] / "manifest.json").read_text())
        assert [j["id"] for j in manifest["active_jobs"]] == [running["id"]]
        disaster_at = time.monotonic()
    finally:
        old.stop()  # the disaster: the old platform is gone

    try:
        restore_out, restore_s = vtp(new, "restore", str(dest))
        assert "checksums and counts verified" in restore_out, restore_out
        assert f"job {running['id']}: attempt" in restore_out, restore_out
        restored = counts(new.data_dir / "vtp.db")
        snapshot_counts = counts(snaps[0] / "database.sqlite3")
        for table, n in snapshot_counts.items():
            # The restore adds one state event for the interrupted job; every other table matches.
            assert restored[table] >= n if table == "jobevent" else restored[table] == n, table
        assert counts(new.data_dir / "mlflow" / "mlflow.db") == counts(snaps[0] / "mlflow.sqlite3")

        started = time.monotonic()
        new.start()
        start_s = time.monotonic() - started
        rto_s = time.monotonic() - disaster_at
        s3 = boto3.client(
            "s3",
            endpoint_url=new.s3_url,
            aws_access_key_id="vtp-local-access",
            aws_secret_access_key="vtp-local-secret-change-me",
            region_name="us-east-1",
        )
        # The interrupted job resumes as soon as the stack is up and may rewrite its own checkpoint
        # and logs before this check reads them: those must exist; every other object must match.
        resumed = f"/jobs/{running['id']}/"
        for obj in manifest["bucket"]["objects"]:
            body = s3.get_object(Bucket=manifest["bucket"]["name"], Key=obj["key"])["Body"].read()
            if resumed in obj["key"] and ("/checkpoints/" in obj["key"] or "/logs/" in obj["key"]):
                continue
            assert hashlib.sha256(body).hexdigest() == obj["sha256"], obj["key"]

        # The same accounts, projects and datasets; the demo password still works.
        api = Api(new.api_url, old.username, old.password)
        names = {p["name"] for p in api.http.get("/projects").raise_for_status().json()}
        assert {"Demo project", "Second project"} <= names
        assert api.job(pid, finished["id"])["state"] == "succeeded"

        reasons = [e.get("reason", "") for e in new.callbacks(running["id"], {"state"})]
        assert any("restored from the backup" in r for r in reasons), reasons
        # It trains again as attempt 2, from the checkpoint in the backup, not from epoch 0.
        deadline = time.monotonic() + 600
        while not (
            second := [e["epoch"] for e in new.callbacks(running["id"], {"epoch"}) if e["attempt"] == 2]
        ):
            assert time.monotonic() < deadline, (
                f"job {running['id']} did not resume: {api.job(pid, running['id'])}"
            )
            time.sleep(1)
        assert min(second) >= 1, second
        assert api.job(pid, running["id"])["attempt"] == running["attempt"] + 1
        api.http.post(f"/projects/{pid}/jobs/{running['id']}/cancel").raise_for_status()
        assert api.wait_finished(pid, running["id"])["state"] == "cancelled"

        fresh = api.wait_finished(pid, api.start_job(pid, version, epochs=1)["id"])
        assert fresh["state"] == "succeeded", fresh
        print(
            f"\nbackup_s={backup_s:.1f} incremental_backup_s={second_s:.1f} "
            f"objects={total2} copied_incrementally={copied_second} restore_s={restore_s:.1f} "
            f"stack_start_s={start_s:.1f} rto_s={rto_s:.1f}"
        )
    finally:
        new.stop()
