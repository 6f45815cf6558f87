"""The `vtp` command line, run as a user runs it (a subprocess) against the whole test stack:
upload a dataset, train one epoch with a live epoch line, read logs and metrics, download the
weights; and the refusals a user meets (a bad token, an unknown project or dataset, a bad zip).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from vtp_client import Client, Unauthorized

from services.runtime.sample_data import yolo_zip
from tests.utils.stack import StackProcess

pytestmark = pytest.mark.client

VTP = str(Path(sys.executable).parent / "vtp")
Run = Callable[..., Any]


@pytest.fixture
def vtp(stack: StackProcess, tmp_path: Path) -> Iterator[Run]:
    """Runs `vtp ARGS` with a fresh config file, pointed at the stack by VTP_URL."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("VTP_")}
    base.update({"VTP_URL": stack.web_url, "VTP_CONFIG": str(tmp_path / "config.json"), "COLUMNS": "200"})

    def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None, timeout: float = 120):
        if args[0] == "--background":  # started, not waited for: the caller reads and waits
            process = subprocess.Popen(
                [VTP, *args[1:]], env=base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
            )
            started.append(process)
            return process
        return subprocess.run(
            [VTP, *args],
            input=stdin,
            env={**base, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    started: list[subprocess.Popen[str]] = []
    yield run
    for process in started:  # a failed test leaves none running
        if process.poll() is None:
            process.kill()
            process.wait()


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, (
        f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


def login(vtp: Run, stack: StackProcess) -> None:
    ok(vtp("login", "--username", stack.username, "--password-stdin", stdin=stack.password + "\n"))


def test_upload_train_wait_and_download(vtp: Run, stack: StackProcess, tmp_path: Path) -> None:
    login(vtp, stack)
    config = Path(tmp_path / "config.json")
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    assert json.loads(config.read_text())["refresh_token"].startswith("vtp_rt_")

    projects = json.loads(ok(vtp("projects", "ls", "--output", "json")).stdout)
    project = next(p for p in projects if p["name"] == "Demo project")
    pid = str(project["id"])
    assert "Demo project" in ok(vtp("projects", "ls")).stdout

    data = tmp_path / "tiny.zip"
    data.write_bytes(yolo_zip(train=8, val=4, size=32, seed=7))
    upload = ok(
        vtp("datasets", "upload", str(data), "--project", "Demo project", "--name", "cli-tiny", "-o", "json")
    )
    uploaded = json.loads(upload.stdout)
    assert (uploaded["name"], uploaded["version"], uploaded["num_images"]) == ("cli-tiny", 1, 12)
    listed = json.loads(ok(vtp("datasets", "ls", "-P", pid, "-o", "json")).stdout)
    assert uploaded["id"] in {d["id"] for d in listed}

    training = vtp(
        "--background", "train", "-P", pid, "--dataset", "cli-tiny:1", "--model", "yolo11n",
        "-p", "epochs=1", "-p", "imgsz=32", "-p", "batch=4", "--wait", "--poll", "1", "-o", "json",
    )  # fmt: skip
    queued = training.stderr.readline()
    assert (found := re.match(r"job (\d+) queued: yolo11n.yaml on cli-tiny:1", queued)), queued
    following = vtp("--background", "jobs", "logs", found.group(1), "-P", pid, "-f", "--poll", "1")
    stdout, stderr = training.communicate(timeout=600)
    followed, _ = following.communicate(timeout=60)  # ends by itself once the job has ended
    assert training.returncode == 0, stderr
    job = json.loads(stdout)
    assert job["state"] == "succeeded", stderr
    assert (job["model"], job["dataset_version_id"], job["hyperparameters"]["epochs"]) == (
        "yolo11n.yaml",
        uploaded["id"],
        1,
    )
    assert "epoch 1/1" in stderr and "map50" in stderr, stderr
    assert following.returncode == 0 and "INFO: " in followed, followed
    jid = str(job["id"])

    assert job["id"] in {j["id"] for j in json.loads(ok(vtp("jobs", "ls", "-P", pid, "-o", "json")).stdout)}
    assert "succeeded" in ok(vtp("jobs", "show", jid, "-P", pid)).stdout
    rows = json.loads(ok(vtp("jobs", "metrics", jid, "-P", pid, "-o", "json")).stdout)
    assert [r["epoch"] for r in rows] == [0] and 0.0 <= rows[0]["map50"] <= 1.0
    logs = ok(vtp("jobs", "logs", jid, "-P", pid)).stdout.splitlines()
    assert len(logs) > 3, logs
    assert ok(vtp("jobs", "logs", jid, "-P", pid, "-f")).stdout.strip(), "a finished job's tail"

    models = json.loads(ok(vtp("models", "ls", "--jobs", "-P", pid, "-o", "json")).stdout)
    assert job["id"] in {m["id"] for m in models}
    out_dir = tmp_path / "weights"
    out_dir.mkdir()
    ok(vtp("models", "download", jid, "-P", pid, "--dest", str(out_dir)))
    artifacts = json.loads(ok(vtp("jobs", "artifacts", jid, "-P", pid, "-o", "json")).stdout)
    best = next(a for a in artifacts if a["key"] == "checkpoints/best.pt")
    assert (out_dir / "best.pt").stat().st_size == best["size"] > 0
    assert zipfile.is_zipfile(out_dir / "best.pt")  # a torch checkpoint is a zip archive

    image = tmp_path / "val.png"
    with zipfile.ZipFile(data) as archive:
        image.write_bytes(archive.read("images/val/0000.png"))
    predicted = json.loads(ok(vtp("models", "predict", jid, str(image), "-P", pid, "-o", "json")).stdout)
    assert predicted["task"] == "detect" and isinstance(predicted["boxes"], list)

    cancel = vtp("jobs", "cancel", jid, "-P", pid)
    assert cancel.returncode == 1 and "already succeeded" in cancel.stderr, cancel.stderr


def test_refusals_are_one_clear_line_and_exit_1(vtp: Run, stack: StackProcess, tmp_path: Path) -> None:
    bad = vtp("projects", "ls", env={"VTP_TOKEN": "vtp_pat_not-a-real-token"})
    assert bad.returncode == 1
    assert "The API token is unknown, expired or revoked" in bad.stderr and "vtp login" in bad.stderr
    assert bad.stdout == ""

    assert "vtp login" in vtp("projects", "ls").stderr  # nobody signed in yet

    login(vtp, stack)
    unknown = vtp("datasets", "ls", "--project", "No such project")
    assert unknown.returncode == 1 and "No project named 'No such project'" in unknown.stderr, unknown.stderr
    assert "Demo project" in unknown.stderr  # names the ones you have

    missing = vtp("train", "--project", "Demo project", "--dataset", "nope", "-p", "epochs=1")
    assert missing.returncode == 1 and "No dataset named 'nope'" in missing.stderr, missing.stderr

    broken = tmp_path / "broken.zip"
    with zipfile.ZipFile(broken, "w") as archive:
        archive.writestr("data.yaml", "names:\n  - a\n")
        archive.writestr("images/train/x.png", b"not an image")
        archive.writestr("labels/train/x.txt", "5 0.5 0.5 0.2 0.2\n")
    refused = vtp("datasets", "upload", str(broken), "--project", "Demo project")
    assert refused.returncode == 1, refused.stderr
    assert "images/train/x.png" in refused.stderr  # every problem, by file

    usage = vtp("train", "--project", "Demo project", "--dataset", "x", "-p", "epochs")
    assert usage.returncode == 2 and "key=value" in usage.stderr

    down = vtp("projects", "ls", env={"VTP_URL": "http://127.0.0.1:9"})
    assert down.returncode == 1 and "Could not reach http://127.0.0.1:9" in down.stderr

    created = json.loads(ok(vtp("tokens", "create", "cli-test", "--days", "1", "-o", "json")).stdout)
    assert created["token"].startswith("vtp_pat_")
    with_token = ok(
        vtp("projects", "ls", "-o", "json", env={"VTP_TOKEN": created["token"], "VTP_CONFIG": "/nonexistent"})
    )
    assert "Demo project" in with_token.stdout
    assert "cli-test" in ok(vtp("tokens", "ls")).stdout

    saved = json.loads((tmp_path / "config.json").read_text())
    ok(vtp("logout"))
    assert not (tmp_path / "config.json").exists()
    with (
        Client(stack.web_url, refresh_token=saved["refresh_token"]) as signed_out,
        pytest.raises(Unauthorized),
    ):
        signed_out.me()  # the server ended that sign-in too


def test_every_command_shows_an_example() -> None:
    """`--help` of each command, the backend's included, ends with runnable examples."""
    import typer
    from typer.testing import CliRunner
    from vtp_client.cli import add_plugin_commands, app

    add_plugin_commands(app)
    root = typer.main.get_command(app)
    paths: list[list[str]] = []

    def walk(command: object, path: list[str]) -> None:
        paths.append(path)
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, [*path, name])

    walk(root, [])
    assert {"up", "migrate", "set-password", "login", "train"} <= {p[0] for p in paths if p}
    assert ["jobs", "logs"] in paths and ["models", "download"] in paths
    runner = CliRunner()
    for path in paths:
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "Examples" in result.output and "$ vtp" in result.output, f"vtp {' '.join(path)} --help"
