"""Every role-restricted control of the pages sits behind permission_gate, whose note names the role
services.domain.permissions requires (pages are built, not served: no browser, no servers)."""

from __future__ import annotations

import re

import pytest

GATED = {
    "dashboard_page": {"Starting training needs the member role"},
    "train_page": {"Starting training needs the member role"},
    "job_page": {
        "Cancelling your job needs the member role",
        "Cancelling others' jobs needs the admin role",
        "Retrying or resuming your job needs the member role",
        "Retrying or resuming others' jobs needs the admin role",
    },
    "models_page": {"Exporting needs the member role", "Running inference needs the member role"},
    "datasets_page": {"Uploading datasets needs the member role"},
    "dataset_page": {"Making a new split needs the member role"},
    "members_page": {
        "Inviting needs the admin role",
        "Changing members needs the admin role",
        "Changing quotas needs the admin role",
    },
}


@pytest.mark.parametrize("page", sorted(GATED))
def test_role_restricted_controls_are_gated(page: str) -> None:
    import app.pages as pages

    component = getattr(pages, page)()
    notes = set(re.findall(r"[A-Z][\w ']+ needs the \w+ role", str(component)))
    assert GATED[page] <= notes, f"missing gates on {page}: {sorted(GATED[page] - notes)}"
