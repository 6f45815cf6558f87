"""Reflex configuration. The web port comes from the one settings object (VTP_WEB_PORT).

`reflex run --env prod` serves pages, the event websocket and /api/v1 on ONE port (the frontend
port); dev mode serves pages on the frontend port and the websocket + API on the backend port.
"""

import reflex as rx
from reflex.plugins import RadixThemesPlugin, SitemapPlugin

from services.infra.settings import get_settings

_settings = get_settings()

config = rx.Config(
    app_name="app",
    telemetry_enabled=False,
    disable_plugins=[SitemapPlugin],
    plugins=[
        RadixThemesPlugin(
            theme=rx.theme(appearance="light", accent_color="indigo", gray_color="slate", radius="medium")
        )
    ],
    frontend_port=_settings.web_port,
    show_built_with_reflex=False,
)
