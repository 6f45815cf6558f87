"""A job's helper threads run at a lower CPU priority than its training thread."""

from __future__ import annotations

import os
import threading
from pathlib import Path

from trainer_runner.threads import HELPER_NICE, lower_this_thread


def _nice(tid: int) -> int:
    stat = Path(f"/proc/self/task/{tid}/stat").read_text()
    return int(stat[stat.rindex(")") + 2 :].split()[16])  # field 19: nice


def test_only_the_calling_thread_is_lowered() -> None:
    seen: dict[str, int] = {}

    def helper() -> None:
        lower_this_thread()
        seen["helper"] = _nice(threading.get_native_id())

    thread = threading.Thread(target=helper)
    thread.start()
    thread.join()
    main = _nice(threading.get_native_id())
    assert main == os.getpriority(os.PRIO_PROCESS, 0)  # the caller of the test is untouched
    assert seen["helper"] == min(main + HELPER_NICE, 19)
