"""DatasetPreview: a dataset version at a glance: a strip of thumbnails, image count, classes.

The thumbnails are the gallery's own (services.domain.datasets.thumbnails draws the boxes and
labels in the class colours), so what the preview shows is what the gallery will show. Each
thumbnail's alt text names its classes, so the strip says something without sight too.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import reflex as rx

from components import tokens


@dataclasses.dataclass
class PreviewThumb:
    src: str = ""  # a data: URI
    alt: str = ""


@dataclasses.dataclass
class DatasetPreviewData:
    id: str = ""
    name: str = ""
    version: str = ""  # "v2"
    href: str = ""
    images: str = ""  # "64 images"
    classes: str = ""  # "2 classes: circle, square"
    task: str = ""
    thumbs: list[PreviewThumb] = dataclasses.field(default_factory=list)


def dataset_preview(data: rx.Var[Any]) -> rx.Component:
    """One dataset's card: name and version (a link to its page), the strip, counts."""
    return rx.el.article(
        rx.vstack(
            rx.hstack(
                rx.el.h3(
                    rx.link(data.name, href=data.href, color=tokens.PRIMARY),
                    margin="0",
                    font_size="16px",
                    id="dataset-preview-title-" + data.id,
                ),
                rx.badge(data.version, color_scheme="gray", variant="soft"),
                rx.badge(data.task, color_scheme="indigo", variant="soft"),
                align="center",
                spacing="2",
            ),
            rx.cond(
                data.thumbs.length() > 0,
                rx.hstack(
                    rx.foreach(
                        data.thumbs,
                        lambda t: rx.image(
                            src=t.src,
                            alt=t.alt,
                            width="72px",
                            height="72px",
                            object_fit="cover",
                            border_radius=tokens.RADIUS["sm"],
                            border=f"1px solid {tokens.GRID}",
                        ),
                    ),
                    spacing="2",
                    class_name="preview-strip",
                ),
                rx.text("No images to preview.", size="2", color=tokens.TEXT_MUTED),
            ),
            rx.text(
                data.images,
                " · ",
                data.classes,
                size="2",
                color=tokens.TEXT_MUTED,
                class_name="preview-facts",
            ),
            spacing="2",
            align="stretch",
        ),
        aria_labelledby="dataset-preview-title-" + data.id,
        class_name="dataset-preview",
        custom_attrs={"data-dataset-id": data.id},
        background_color=tokens.SURFACE,
        border=f"1px solid {tokens.BORDER}",
        border_radius=tokens.RADIUS["md"],
        padding=tokens.SPACE["md"],
    )


def dataset_previews(previews: rx.Var[list[DatasetPreviewData]], *, id: str, **props: Any) -> rx.Component:
    return rx.grid(
        rx.foreach(previews, dataset_preview),
        grid_template_columns="repeat(auto-fill, minmax(340px, 1fr))",
        gap=tokens.SPACE["md"],
        width="100%",
        id=id,
        **props,
    )
