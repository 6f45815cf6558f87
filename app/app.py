"""The Reflex app: pages from app.pages plus the REST API (app.api) on the same server.

The Radix theme is configured in rxconfig.py (RadixThemesPlugin; App(theme=) is deprecated).
"""

from __future__ import annotations

import reflex as rx

from app.api.frontend_cache import FrontendCache
from app.api.main import api
from app.pages import PAGES
from components import tokens
from services.infra import errortracking, logs
from services.infra.settings import get_settings

logs.configure("web", fmt=get_settings().log_format)
errortracking.init("web")

app = rx.App(
    # The compiled frontend's files from memory (FrontendCache wraps Reflex's own app), then the
    # REST API's app around both, with its middleware (request ids, security headers, shedding).
    api_transformer=[FrontendCache, api],
    stylesheets=["/styles.css"],
    style={"font_family": tokens.FONT_FAMILY, "color": tokens.TEXT},
)
# Reflex's own connection overlay (a pulsing icon and a toast naming the websocket URL) gives way to
# the page shells' plain-language banner (components/connection.py).
app.app_wraps.pop((5, "Overlay"), None)

for page in PAGES:
    app.add_page(page.component, route=page.route, title=page.title, on_load=page.on_load)
