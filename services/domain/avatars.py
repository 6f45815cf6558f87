"""Avatars: initials on a coloured badge, readable by everyone (WCAG AA contrast).

Pure functions, shared by the accounts domain (defaults for new users, the profile check) and the
UI's design tokens (`components.tokens` checks its own palette with the same `contrast_ratio`).
"""

from __future__ import annotations

import colorsys
import hashlib
import re

from services.errors import InvalidInput

BADGE_TEXT_COLOR = "#ffffff"
MIN_CONTRAST = 4.5  # WCAG AA for normal text: the avatar's initials on its badge colour
_HEX = re.compile(r"^#[0-9a-fA-F]{6}$")


def _luminance(colour: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(colour.lstrip("#")[i : i + 2], 16) for i in (0, 2, 4))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def contrast_ratio(foreground: str, background: str) -> float:
    """WCAG 2 contrast ratio between two #rrggbb colours (1 to 21)."""
    high, low = sorted((_luminance(foreground), _luminance(background)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def default_badge_color(username: str) -> str:
    """A stable hue from the name, darkened until white initials on it pass WCAG AA."""
    hue = int(hashlib.sha256(username.encode()).hexdigest(), 16) % 360 / 360
    lightness = 0.5
    while True:
        r, g, b = colorsys.hls_to_rgb(hue, lightness, 0.65)
        color = f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"
        if contrast_ratio(color, BADGE_TEXT_COLOR) >= MIN_CONTRAST or lightness <= 0.1:
            return color
        lightness -= 0.02


def default_avatar_name(username: str) -> str:
    """Initials: 'jane_doe' -> 'JD', 'alice' -> 'AL'."""
    parts = [p for p in re.split(r"[-_]+", username) if p]
    initials = "".join(p[0] for p in parts[:2]) if len(parts) > 1 else username[:2]
    return initials.upper()


def check_badge(color: str) -> str:
    """The colour, lower-cased, when white initials on it are readable; InvalidInput otherwise."""
    if not _HEX.match(color):
        raise InvalidInput("badge_color must look like #1d4ed8")
    ratio = contrast_ratio(color, BADGE_TEXT_COLOR)
    if ratio < MIN_CONTRAST:
        raise InvalidInput(
            f"badge_color {color} gives white initials a contrast of {ratio:.2f}:1; "
            f"choose a darker colour (at least {MIN_CONTRAST}:1)"
        )
    return color.lower()


def check_avatar_name(avatar_name: str) -> str:
    avatar_name = avatar_name.strip()
    if not 1 <= len(avatar_name) <= 3:
        raise InvalidInput("avatar_name must be 1 to 3 characters (initials)")
    return avatar_name
