"""Design tokens: every colour, space and radius the UI uses, in one place.

Text/background pairs are chosen for WCAG AA (contrast >= 4.5:1 for normal text); the ratios
are checked in tests/ui/test_chart.py.
"""

from __future__ import annotations

from typing import Final

# One WCAG formula for the whole code base (the avatars' badge check uses it too).
from services.domain.avatars import contrast_ratio as contrast_ratio

# Neutral palette (light theme).
BACKGROUND: Final = "#f8fafc"
SURFACE: Final = "#ffffff"
BORDER: Final = "#cbd5e1"
GRID: Final = "#e2e8f0"
TEXT: Final = "#0f172a"
TEXT_MUTED: Final = "#475569"
PRIMARY: Final = "#1d4ed8"
PRIMARY_TEXT: Final = "#ffffff"
DANGER: Final = "#b91c1c"
DANGER_BG: Final = "#fef2f2"
FOCUS_RING: Final = "#2563eb"

# Boxes of the prediction views, by verdict: right, false detection, missed object, ground truth.
# Each box also says its verdict in text (its label and the cell's caption), not by colour alone.
VERDICT: Final = {"tp": "#15803d", "fp": "#dc2626", "missed": "#d97706", "truth": "#2563eb"}

FONT_FAMILY: Final = "Inter, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"
MONO_FAMILY: Final = "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace"

# Spacing scale and radii.
SPACE: Final = {"xs": "4px", "sm": "8px", "md": "16px", "lg": "24px", "xl": "32px"}
RADIUS: Final = {"sm": "4px", "md": "8px", "pill": "999px"}
CONTENT_WIDTH: Final = "1200px"

# Job states: a text colour, a tinted background and a lucide icon. The text never relies on
# colour alone: every indicator also shows the icon and the state's name.
STATUS: Final[dict[str, dict[str, str]]] = {
    "queued": {"fg": "#374151", "bg": "#f3f4f6", "icon": "clock", "label": "Queued"},
    "dispatching": {"fg": "#3730a3", "bg": "#e0e7ff", "icon": "send", "label": "Dispatching"},
    "running": {"fg": "#1e40af", "bg": "#dbeafe", "icon": "loader_circle", "label": "Running"},
    "retrying": {"fg": "#92400e", "bg": "#fef3c7", "icon": "rotate_cw", "label": "Retrying"},
    "succeeded": {"fg": "#166534", "bg": "#dcfce7", "icon": "circle_check", "label": "Succeeded"},
    "failed": {"fg": "#991b1b", "bg": "#fee2e2", "icon": "circle_x", "label": "Failed"},
    "cancelled": {"fg": "#334155", "bg": "#e2e8f0", "icon": "ban", "label": "Cancelled"},
}
UNKNOWN_STATUS: Final = {"fg": "#374151", "bg": "#f3f4f6", "icon": "circle_help", "label": "Unknown"}

# The one categorical palette: runs on the compare page, classes in predictions, series that
# have no colour of their own. All eight keep >= 4.5:1 on white (they also label text), and
# every chart also gives each line its own dash, so colour is never alone.
RUN_PALETTE: Final = ("#1d4ed8", "#b45309", "#047857", "#7c3aed", "#be123c", "#0e7490", "#4d7c0f", "#a21caf")

# Chart series colours of the job page's live chart: a train/val pair of losses and two quality
# metrics per task, so the same role keeps the same colour whichever task the job trains.
SERIES: Final = {
    "train_box_loss": "#1d4ed8",
    "val_box_loss": "#b45309",
    "train_seg_loss": "#0e7490",
    "val_seg_loss": "#be123c",
    "train_loss": "#1d4ed8",
    "val_loss": "#b45309",
    "map50": "#047857",
    "map50_95": "#7c3aed",
    "mask_map50": "#4d7c0f",
    "mask_map50_95": "#a21caf",
    "top1": "#047857",
    "top5": "#7c3aed",
}
