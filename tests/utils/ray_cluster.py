"""A real Ray cluster on loopback for tests and benchmarks: a head and worker nodes.

Every node is `ray start --block` in its own PID namespace (`unshare --pid --fork --mount-proc
--kill-child`): SIGKILL of that one `unshare` process ends everything on the node (raylet,
workers, the job's own process) at once, as a machine that loses power would. No `ray stop`:
it stops every Ray process of the user on the machine, other people's clusters included. Each
node gets its own ports (a second node on one host needs its own dashboard agent port) and the
cluster its own short temp dir (Ray's socket paths must stay under 108 characters).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.utils.servers import free_port

RAY = Path(sys.executable).parent / "ray"


@dataclass
class RayNode:
    name: str
    process: subprocess.Popen[bytes]
    log: Path
    node_id: str = ""

    def kill(self) -> None:
        """SIGKILL the namespace: the node and everything on it die within a second."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)


@dataclass
class RayCluster:
    """Start with `start()`, add nodes with `add_node()`, end with `stop()`."""

    log_dir: Path
    gcs_port: int = field(default_factory=free_port)
    dashboard_port: int = field(default_factory=free_port)
    temp_dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="vtpray", dir="/tmp")))
    nodes: list[RayNode] = field(default_factory=list)

    @property
    def dashboard_url(self) -> str:
        return f"http://127.0.0.1:{self.dashboard_port}"

    def _launch(self, name: str, args: list[str]) -> RayNode:
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"ray-{name}.log"
        ports = [
            f"--dashboard-agent-listen-port={free_port()}",
            f"--dashboard-agent-grpc-port={free_port()}",
            f"--metrics-export-port={free_port()}",
            f"--runtime-env-agent-port={free_port()}",
        ]
        # A PID namespace needs root, or a user namespace of its own where root is mapped.
        userns = [] if os.geteuid() == 0 else ["--user", "--map-root-user"]
        argv = [
            "unshare",
            *userns,
            "--pid",
            "--fork",
            "--mount-proc",
            "--kill-child",
            str(RAY),
            "start",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--disable-usage-stats",
            *ports,
            *args,
        ]
        with log.open("ab") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        node = RayNode(name, process, log)
        self.nodes.append(node)
        return node

    def alive_nodes(self) -> list[dict[str, object]]:
        try:
            body = httpx.get(f"{self.dashboard_url}/api/v0/nodes", params={"limit": 1000}, timeout=5).json()
        except (httpx.HTTPError, ValueError):
            return []
        return [n for n in body["data"]["result"]["result"] if n["state"] == "ALIVE"]

    def _wait_nodes(self, count: int, node: RayNode, timeout_s: float = 90) -> list[dict[str, object]]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if node.process.poll() is not None:
                raise RuntimeError(f"ray node {node.name} exited:\n{node.log.read_text()[-3000:]}")
            alive = self.alive_nodes()
            if len(alive) >= count:
                return alive
            time.sleep(0.5)
        raise RuntimeError(f"ray node {node.name} did not join:\n{node.log.read_text()[-3000:]}")

    def start(self) -> RayCluster:
        """The head: runs the dashboard (Job Submission API) and no jobs (`--num-cpus=0`)."""
        head = self._launch(
            "head",
            [
                "--head",
                f"--port={self.gcs_port}",
                "--dashboard-host=127.0.0.1",
                f"--dashboard-port={self.dashboard_port}",
                "--include-dashboard=true",
                f"--ray-client-server-port={free_port()}",
                "--num-cpus=0",
                "--num-gpus=0",
                f"--temp-dir={self.temp_dir}",
            ],
        )
        (info,) = self._wait_nodes(1, head)
        head.node_id = str(info["node_id"])
        return self

    def add_node(
        self, name: str, *, cpus: float, gpus: int = 0, resources: dict[str, float] | None = None
    ) -> RayNode:
        """A worker node with `cpus`, `gpus` (declared: Ray trusts the count, so a CPU machine can
        stand in for a GPU one) and custom resources such as `{"accelerator:gpu_a": 1}`."""
        before = {n["node_id"] for n in self.alive_nodes()}
        node = self._launch(
            name,
            [
                f"--address=127.0.0.1:{self.gcs_port}",
                f"--num-cpus={cpus:g}",
                f"--num-gpus={gpus}",
                f"--resources={json.dumps(resources or {})}",
            ],
        )
        alive = self._wait_nodes(len(before) + 1, node)
        node.node_id = next(str(n["node_id"]) for n in alive if n["node_id"] not in before)
        return node

    def stop(self) -> None:
        for node in reversed(self.nodes):
            node.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
