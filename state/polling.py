"""Shared rules for the background loops of the page states that watch something live.

Pages wait for pushed "changed" notices (services.infra.live) and re-read only then; without
Redis they fall back to a slow re-read and say that live updates are paused.
"""

from __future__ import annotations

import time

from reflex.utils.format import format_route
from reflex.utils.prerequisites import get_and_validate_app

from services.infra import live

POLL_INTERVAL_S = 1.0
# With push working, a page still re-reads this often: heartbeat staleness is a matter of time.
LIVE_REFRESH_S = 15.0
# A page that knows when what it shows next changes by itself (the job page: when a silent
# trainer's silence crosses the staleness line) waits for that, or this long at most: to end the
# watcher of a tab that is gone, and to move "no update for ..." along.
IDLE_LOOK_S = 60.0
# Without push (Redis unreachable), it re-reads this often and says live updates are paused.
FALLBACK_REFRESH_S = 3.0
PAUSED_MESSAGE = "Live updates are paused (reconnecting); this page refreshes every few seconds meanwhile."
# A tab that has been gone this long (closed, or network lost) stops its watcher.
DISCONNECT_GRACE_S = 30.0


def route_id(route: str) -> str:
    """The value `self.router.route_id` has on the page registered at `route` ("/" -> "/index")."""
    return "/" + format_route(route)


async def client_connected(client_token: str) -> bool:
    """Whether the browser tab with this client token still has a websocket to any web process.

    A tab whose socket dropped may reconnect to another of the web processes (services/runtime/
    web.py); its watcher keeps running where it started, and its updates reach the tab through
    Reflex's Redis token manager. So "gone" means gone from every process, which only that
    token manager knows (Reflex offers no public accessor for it)."""
    try:
        namespace = get_and_validate_app().app.event_namespace
    except Exception:  # noqa: BLE001 - outside a running app (tests): assume connected
        return True
    if namespace is None:
        return True
    if client_token in namespace.token_to_sid:
        return True
    return await namespace._token_manager.is_token_connected(client_token)


class DisconnectTimer:
    """How long a client has been gone; `update` says True once the grace period has passed."""

    def __init__(self, grace_s: float = DISCONNECT_GRACE_S, interval_s: float = POLL_INTERVAL_S) -> None:
        # interval_s: the shortest time between updates, so a watcher gets at least one more look.
        self._grace = max(grace_s, interval_s)
        self._gone_since: float | None = None

    def update(self, connected: bool) -> bool:
        now = time.monotonic()
        if connected:
            self._gone_since = None
            return False
        if self._gone_since is None:
            self._gone_since = now
        return now - self._gone_since >= self._grace


def watch(channels: list[str]) -> live.Watch:
    """A page's standing subscription to pushed changes (see services.infra.live)."""
    return live.hub().watch(channels)


async def next_change(watching: live.Watch, refresh_s: float = LIVE_REFRESH_S) -> bool:
    """Wait for a pushed change, or until it is time to look anyway (`refresh_s` while push is
    up); False when push is down."""
    await watching.changed(refresh_s if watching.connected else FALLBACK_REFRESH_S)
    return watching.connected
