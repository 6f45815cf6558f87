"""Accessibility helpers for components whose inner elements Reflex does not expose."""

from __future__ import annotations

import reflex as rx


def labelled_upload(upload: rx.Component, label: str) -> rx.Component:
    """Give the hidden file input inside `rx.upload.root` an accessible name (axe rule `label`).

    react-dropzone renders `<div><input type=file/>…</div>`; the input takes no props of ours, so
    the label goes on it directly as an attribute."""
    for child in upload.children:
        for inner in child.children:
            if type(inner).__name__ == "Input":
                inner.custom_attrs["aria-label"] = label
                return upload
    raise ValueError("no file input inside this upload component")
