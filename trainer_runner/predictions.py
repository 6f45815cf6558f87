"""Predictions drawn on images: the end-of-training validation samples and `/predict` share it."""

from __future__ import annotations

import colorsys
from typing import Any

SAMPLE_IMAGES = 4  # validation images drawn at the end of a job


def colour(class_id: int) -> tuple[int, int, int]:
    """A stable, distinct colour per class (golden-ratio hues)."""
    r, g, b = colorsys.hsv_to_rgb((class_id * 0.618034) % 1.0, 0.85, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


def draw(image: Any, result: dict[str, Any]) -> Any:
    """A copy of the PIL `image` with boxes/polygons and labels, or the top classes written on."""
    from PIL import ImageDraw, ImageFont

    canvas = image.convert("RGB").copy()
    pen = ImageDraw.Draw(canvas)
    font = ImageFont.load_default()
    for item in result.get("boxes", []):
        rgb = colour(item["class_id"])
        if item.get("polygon"):
            pen.polygon([tuple(p) for p in item["polygon"]], outline=rgb)
        x1, y1, x2, y2 = item["box"]
        pen.rectangle((x1, y1, x2, y2), outline=rgb, width=max(1, canvas.width // 200))
        label = f"{item['class_name']} {item['score']:.2f}"
        pen.text((x1 + 2, max(0, y1 - 11)), label, fill=rgb, font=font)
    for rank, item in enumerate(result.get("probabilities", [])[:3]):
        label = f"{item['class_name']} {item['score']:.2f}"
        pen.text((2, 2 + 11 * rank), label, fill=colour(item["class_id"]), font=font)
    return canvas
