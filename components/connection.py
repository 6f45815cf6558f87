"""The banner every page shows while its live connection to the server is down.

Reflex keeps the page's state on the server and talks over one websocket. While that socket is
down nothing on the page changes, so the page must say that what it shows may be out of date
instead of looking live. Reflex reconnects by itself and rehydrates the whole state on reconnect,
so whatever changed meanwhile (new epochs, a finished job) appears as soon as the banner goes.
"""

from __future__ import annotations

import reflex as rx
from reflex.components.core.banner import has_connection_errors

LOST_MESSAGE = "Connection to the server lost: this page may be out of date. Reconnecting…"


def connection_banner() -> rx.Component:
    return rx.cond(
        has_connection_errors,
        rx.callout(
            LOST_MESSAGE,
            icon="wifi_off",
            color_scheme="amber",
            role="alert",
            id="connection-lost",
            width="100%",
            position="fixed",
            left="0",
            top="0",
            z_index="1000",
        ),
    )
