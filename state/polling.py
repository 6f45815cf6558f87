"""Shared rules for the background polling loops of the page states."""

from __future__ import annotations

from reflex.utils.format import format_route
from reflex.utils.prerequisites import get_and_validate_app

POLL_INTERVAL_S = 1.0
# A tab that has been gone this long (closed, or network lost) stops its poller.
DISCONNECT_GRACE_S = 30.0


def route_id(route: str) -> str:
    """The value `self.router.route_id` has on the page registered at `route` ("/" -> "/index")."""
    return "/" + format_route(route)


def client_connected(client_token: str) -> bool:
    """Whether the browser tab with this client token still has a websocket to this process."""
    try:
        namespace = get_and_validate_app().app.event_namespace
    except Exception:  # noqa: BLE001 - outside a running app (tests): assume connected
        return True
    if namespace is None:
        return True
    return client_token in namespace.token_to_sid


class DisconnectTimer:
    """Counts how long a client has been gone; `expired` once the grace period has passed."""

    def __init__(self, grace_s: float = DISCONNECT_GRACE_S, interval_s: float = POLL_INTERVAL_S) -> None:
        self._limit = max(1, int(grace_s / interval_s))
        self._missed = 0

    def update(self, connected: bool) -> bool:
        self._missed = 0 if connected else self._missed + 1
        return self._missed >= self._limit
