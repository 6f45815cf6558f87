"""Live lag of the job page (not a timed test): time from a trainer's epoch callback to the new
point being visible in the browser (`#metrics-chart[data-points]`), median and p95 of N samples.

Starts its own stack (`vtp up`), inserts a running job straight into the database (so no real
trainer competes with the synthetic callbacks), opens `/jobs/{id}` signed in, then for each epoch
posts a signed callback to `/api/v1/trainer/callbacks/{id}` exactly as trainer_runner does
(services/infra/signing.py recipe, the job's secret from the DB) and waits for the point to show.
A random pause between samples keeps them out of phase with any periodic work. With
`--viewers N` the same job page is open N times while `--reporters M` other running jobs each
receive an epoch callback every second; the web process's CPU is measured with one idle viewer
and again with N (it should not grow with idle viewers).

Which viewers are browsers: the lag is always measured in ONE real Chromium page. By default
(`--browsers 1`) the other N-1 viewers are socket viewers: each is a websocket client that
replays what a real Chromium tab sent when it opened the job page (recorded from one), under a
client token of its own. The server cannot tell them from tabs: each has its own page state,
runs the page's load and live watcher, and is sent the same state deltas; the client only
answers pings and reads the deltas, without drawing the chart. That is the server's load of N
viewers, each on a machine of their own; 50 Chromium pages drawing Plotly on the bench's own two
cores measure the bench machine's browser instead. `--browsers K` opens K real pages instead.
Usage:

    python bench/ui_live_lag.py [--samples 50] [--viewers 1] [--browsers 1] [--reporters 0]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import threading
import time
import uuid

from _stack import chromium, running_stack, signed_in, summary

from tests.utils.live_jobs import epoch_event, insert_running_job, post_callback
from tests.utils.stack import Api


def _insert(api: Api, username: str, epochs: int) -> tuple[int, str]:
    pid = api.project_id()
    return insert_running_job(pid, api.datasets(pid)[-1]["id"], username, epochs)


def _web_process(port: int):  # type: ignore[no-untyped-def]
    """The process serving the app's port (its CPU is what grows with viewers, if anything does)."""
    import psutil

    for conn in psutil.net_connections(kind="tcp"):
        if conn.laddr and conn.laddr.port == port and conn.status == psutil.CONN_LISTEN and conn.pid:
            return psutil.Process(conn.pid)
    return None


def _cpu_percent(process, seconds: float) -> float:  # type: ignore[no-untyped-def]
    """CPU of the web process and its children over `seconds` (percent of one core)."""
    import psutil

    def total() -> float:
        used = 0.0
        for proc in [process, *process.children(recursive=True)]:
            try:
                times = proc.cpu_times()
                used += times.user + times.system
            except psutil.Error:
                pass
        return used

    before = total()
    time.sleep(seconds)
    return 100 * (total() - before) / seconds


class Recorder:
    """What a real Chromium tab sends on its Reflex websocket when it opens a page: its URL and
    its socket.io packets (the CONNECT that carries the hydrate event, then any events)."""

    def __init__(self) -> None:
        self.url = ""
        self.frames: list[str] = []

    def on_websocket(self, ws) -> None:  # type: ignore[no-untyped-def]
        if "/_event" not in ws.url:
            return
        # The newest socket is the page's (one warmed up before the app mounted may be dropped).
        self.url, frames = ws.url, []
        self.frames = frames

        def sent(payload: str | bytes) -> None:
            text = payload if isinstance(payload, str) else payload.decode()
            if text.startswith("4"):  # socket.io packets; "2"/"3" are engine.io pings and pongs
                frames.append(text)

        ws.on("framesent", sent)


RECONNECTS = 5
SETTLE_S = 10.0
_POINTS = re.compile(r"points_count_rx_state_\W*?(\d+)")


class SocketViewers:
    """N socket viewers of one page, on an event loop in a thread of their own (see the module
    docstring). `points[i]` is the newest point count viewer i was sent."""

    def __init__(self, recorded: Recorder, count: int) -> None:
        token = re.search(r"[?&]token=([^&]+)", recorded.url)
        if token is None or not recorded.frames:
            raise SystemExit(f"could not record the page's websocket (url {recorded.url!r})")
        self._recorded, self._old = recorded, token.group(1)
        self.points = [0] * count
        self.connected = [False] * count
        self.errors: list[str] = []
        self.reconnects = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._all_done = asyncio.run_coroutine_threadsafe(self._all(), self._loop)

    async def _all(self) -> None:
        await asyncio.gather(*[self._viewer(i) for i in range(len(self.points))])

    async def _viewer(self, index: int) -> None:
        """One viewer; a dropped connection is opened again under the same client token, as a
        tab's socket.io client does (the page state is the same). One viewer failing for good
        must not end the others."""
        mine = str(uuid.uuid4())
        await asyncio.sleep(0.1 * index)  # tabs are not all opened in the same instant
        for _attempt in range(RECONNECTS + 1):
            try:
                await self._follow(index, mine)
                return
            except Exception as exc:  # noqa: BLE001 - counted and reported
                error = repr(exc)
                self.reconnects += 1
                await asyncio.sleep(1.0)
        self.errors.append(error)

    async def _follow(self, index: int, mine: str) -> None:
        from websockets.asyncio.client import connect

        frames = [f.replace(self._old, mine) for f in self._recorded.frames]
        # Engine.IO pings (answered below) keep the connection; websockets' own pings would close
        # it when a loaded machine answers late, and opening 49 at once may take a while.
        url = self._recorded.url.replace(self._old, mine)
        async with connect(url, max_size=None, open_timeout=120, ping_interval=None) as ws:
            async for message in ws:
                text = message if isinstance(message, str) else message.decode()
                if text.startswith("0{"):  # engine.io open: connect with the hydrate, as the tab did
                    await ws.send(frames[0])
                elif text.startswith("40"):  # socket.io connected: the tab's further events
                    self.connected[index] = True
                    for frame in frames[1:]:
                        await ws.send(frame)
                elif text == "2":
                    await ws.send("3")
                else:
                    for found in _POINTS.findall(text):
                        self.points[index] = max(self.points[index], int(found))

    def wait_connected(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while sum(self.connected) + len(self.errors) < len(self.connected) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not any(self.connected):
            raise SystemExit(f"no socket viewer connected: {self.errors[:3]}")
        if not all(self.connected):
            print(f"{self.connected.count(False)} socket viewers did not connect: {self.errors[:3]}")

    def close(self) -> None:
        """Close every socket (before the stack stops, so none sees the server go away)."""
        self._all_done.cancel()
        time.sleep(0.5)  # the cancelled viewers close their sockets on the loop
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)


_OURS = ("(state/", "(services/", "(components/", "(app/")
# Where a live update's server time went before (serializing figures, emitting deltas, the DB).
_HOT = ("serialize_figure", "BaseState._serialize", "BaseState.get_delta", "EventNamespace.emit_update")
_HOT += ("Session.execute",)


def _profile_summary(path: str, top: int = 15) -> str:
    """Where the web process spent its samples (inclusive: a function and what it called), from
    py-spy's raw output: our own functions, then a few library hot spots."""
    from collections import Counter

    inclusive: Counter[str] = Counter()
    total = 0
    with open(path) as lines:
        for line in lines:
            stack, _, count = line.rstrip().rpartition(" ")
            if not stack or not count.isdigit():
                continue
            total += int(count)
            names = {frame.rsplit(":", 1)[0] for frame in stack.split(";")}  # per function, not line
            for name in names:
                inclusive[name] += int(count)
    ours = [(n, c) for n, c in inclusive.most_common() if any(m in n for m in _OURS)][:top]
    hot = [(n, c) for n, c in inclusive.most_common() if n.split(" (")[0] in _HOT]
    rows = [f"  {100 * c / max(total, 1):5.1f}%  {n})" for n, c in ours + hot]
    return f"web process profile (py-spy, {total} samples, inclusive):\n" + "\n".join(rows)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=50)
    parser.add_argument("--viewers", type=int, default=1)
    parser.add_argument("--browsers", type=int, default=1, help="viewers that are real Chromium pages")
    parser.add_argument("--reporters", type=int, default=0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    parser.add_argument(
        "--profile", default="", help="py-spy the web process while sampling; raw output here"
    )
    args = parser.parse_args()
    total = args.samples + 10
    # The synthetic jobs have no trainer behind them: the reconciler must never find them silent,
    # or it hands them to the real trainer as new attempts, which then trains beside the bench.
    with running_stack(VTP_HEARTBEAT_INTERVAL_S="60", VTP_HEARTBEAT_TIMEOUT_S="86400") as (stack, api):
        import httpx

        job_id, secret = _insert(api, stack.username, total)
        others = [_insert(api, stack.username, 100_000) for _ in range(args.reporters)]
        web = _web_process(int(stack.api_url.rsplit(":", 1)[-1].split("/")[0]))
        lags: list[float] = []
        stop = threading.Event()

        def report() -> None:
            with httpx.Client(timeout=30) as client:
                epoch = 0
                while not stop.wait(1.0):
                    epoch += 1
                    for other_id, other_secret in others:
                        body = epoch_event(epoch, 100_000)
                        post_callback(client, stack.api_url, other_id, other_secret, body)

        with chromium() as browser, httpx.Client(timeout=30) as http:
            page = signed_in(browser, stack, f"/jobs/{job_id}")
            page.wait_for_selector("#metrics-chart")
            page.wait_for_function("document.querySelector('#job-state .status-indicator')")
            cpu_one = _cpu_percent(web, args.idle_seconds) if web else float("nan")
            browsers = max(1, min(args.browsers, args.viewers))
            viewers = [signed_in(browser, stack, f"/jobs/{job_id}") for _ in range(browsers - 1)]
            for viewer in viewers:
                viewer.wait_for_selector("#metrics-chart")
            sockets = None
            if args.viewers > browsers:
                # A second tab of the signed-in context (same sign-in, its own page state) opens
                # the job page; what it sends is what every socket viewer sends.
                recorded = Recorder()
                tab = page.context.new_page()
                tab.on("websocket", recorded.on_websocket)
                tab.goto(f"{stack.web_url}/jobs/{job_id}")
                tab.wait_for_selector("#metrics-chart")
                tab.close()
                sockets = SocketViewers(recorded, args.viewers - browsers)
                sockets.wait_connected(120)
            # Idle means after the viewers' own page loads (each connected viewer then loads the
            # job and its extras once): what stays is each page's periodic re-check.
            time.sleep(SETTLE_S)
            cpu_many = _cpu_percent(web, args.idle_seconds) if web else float("nan")
            reporter = threading.Thread(target=report, daemon=True)
            reporter.start()
            spy = None
            if args.profile and web is not None:
                import subprocess
                import sys

                py_spy = os.path.join(os.path.dirname(sys.executable), "py-spy")
                spy = subprocess.Popen(
                    [
                        py_spy,
                        "record",
                        "--pid",
                        str(web.pid),
                        "--format",
                        "raw",
                        "--rate",
                        "50",
                        "--subprocesses",
                    ]
                    + ["--nonblocking", "-o", args.profile],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            for epoch in range(1, args.samples + 1):
                time.sleep(random.uniform(0.3, 1.3))
                start = time.perf_counter()
                post_callback(http, stack.api_url, job_id, secret, epoch_event(epoch, total))
                page.wait_for_function(
                    f"Number(document.querySelector('#metrics-chart')?.dataset.points) >= {epoch}",
                    polling=20,
                    timeout=30_000,
                )
                lags.append(time.perf_counter() - start)
            late = [
                v
                for v in viewers
                if v.evaluate("Number(document.querySelector('#metrics-chart')?.dataset.points)")
                < args.samples
            ]
            if spy is not None:
                import signal

                spy.send_signal(signal.SIGINT)
                spy.wait(60)
            if sockets is not None:
                # Bounded wait: a socket viewer's last delta may still be on its way.
                deadline = time.monotonic() + 30
                while min(sockets.points) < args.samples and time.monotonic() < deadline:
                    time.sleep(0.2)
                late_sockets = sum(1 for n in sockets.points if n < args.samples)
                print(f"socket viewers: {sockets.reconnects} reconnect(s), {len(sockets.errors)} gave up")
                sockets.close()
            else:
                late_sockets = 0
            stop.set()
            reporter.join()
        socket_count = args.viewers - browsers
        label = (
            f"live lag, {args.viewers} viewer(s) ({browsers} Chromium page(s), {socket_count} socket "
            f"viewer(s) that replay a tab's websocket and draw nothing), "
            f"{args.reporters} other job(s) reporting"
        )
        print(summary(f"{label} (callback -> point visible)", lags, target_s=0.3))
        print("samples (ms):", " ".join(f"{s * 1000:.0f}" for s in lags))
        print(
            f"web CPU while idle: {cpu_one:.1f}% of a core with 1 viewer, {cpu_many:.1f}% with "
            f"{args.viewers} (over {args.idle_seconds:g} s each); viewers behind at the end: "
            f"{len(late)} of {browsers - 1} other Chromium page(s), "
            f"{late_sockets} of {socket_count} socket viewer(s)"
        )
        if args.profile and os.path.exists(args.profile):
            print(_profile_summary(args.profile))
        print(f"load average at the end (1, 5, 15 min): {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
