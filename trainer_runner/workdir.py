"""The files through which the server and a job child talk, inside `{scratch}/jobs/{id}-{attempt}/`.

spec.json (server -> child: the request), status.json (child -> server: state, epoch),
`cancel` (server -> child: stop at the next batch), trainer.jsonl (the job log, uploaded).
A warm child (`python -m trainer_runner.job --warm`) is started before its job and reads the
path of its spec.json from stdin.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

SPEC_FILE = "spec.json"
STATUS_FILE = "status.json"
CANCEL_FILE = "cancel"
LOG_FILE = "trainer.jsonl"
WARM_ARG = "--warm"


def read_status(work_dir: Path) -> dict[str, Any]:
    """The attempt's last recorded status; empty when none was written yet."""
    try:
        found: dict[str, Any] = json.loads((work_dir / STATUS_FILE).read_text())
        return found
    except (OSError, ValueError):
        return {}


def write_status(work_dir: Path, **status: Any) -> None:
    """Merge into status.json atomically, so a reader never sees half a file."""
    merged = {**read_status(work_dir), **status}
    tmp = work_dir / f".{STATUS_FILE}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(merged))
    os.replace(tmp, work_dir / STATUS_FILE)
