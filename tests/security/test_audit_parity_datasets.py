"""Audit parity for dataset actions: the web UI's path (the `services.actions.datasets` function
with a web actor, as the datasets pages' handlers call it) and the REST API write the same audit
row (action, actor, target, result, project, detail) for every dataset action of the
authorization matrix; only the channel differs. Refusals and failures say why; successful reads
write nothing.
"""

from __future__ import annotations

import io
import re
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, func, select

from services.actions import datasets as actions
from services.actions.core import Actor, web_actor
from services.domain import audit
from services.domain.models import AuditEvent
from services.errors import DomainError
from services.infra.db import session_scope
from services.runtime import sample_data
from tests.security.conftest import Cast

pytestmark = [pytest.mark.security, pytest.mark.usefixtures("backend")]


@dataclass
class Shared:
    """The cast's project with one dataset (version 1, classes circle and square)."""

    cast: Cast
    client: TestClient
    dataset_id: int


@pytest.fixture(scope="module")
def shared(client: TestClient, cast: Cast) -> Shared:
    response = client.post(
        f"/api/v1/projects/{cast.project_id}/datasets",
        files={"file": ("shapes.zip", sample_data.yolo_zip(train=4, val=2), "application/zip")},
        headers=cast.bearer("owner"),
    )
    assert response.status_code == 201, response.text
    return Shared(cast=cast, client=client, dataset_id=response.json()["dataset_id"])


def _web(cast: Cast, part: str) -> Actor:
    """The actor a datasets page resolves from the part's browser session token."""
    from services.domain import tokens
    from services.domain.models import User

    with session_scope() as session:
        token = tokens.issue_session(session, user=session.get(User, cast.users[part]))
    return web_actor(token)


def _last_id() -> int:
    with session_scope() as session:
        return session.exec(select(func.max(AuditEvent.id))).one() or 0


def _rows_after(marker: int) -> list[AuditEvent]:
    with session_scope() as session:
        return list(
            session.exec(select(AuditEvent).where(col(AuditEvent.id) > marker).order_by(col(AuditEvent.id)))
        )


def _key(row: AuditEvent) -> tuple[Any, ...]:
    return (row.action, row.actor_id, row.actor, row.target, row.result, row.project_id, row.detail)


@dataclass
class Outcome:
    rows: list[AuditEvent]
    value: Any  # the UI call's result or DomainError; the REST response


def _through_ui(call: Callable[[], Any]) -> Outcome:
    marker = _last_id()
    try:
        value: Any = call()
    except DomainError as exc:
        value = exc
    return Outcome(_rows_after(marker), value)


def _through_rest(call: Callable[[], httpx.Response]) -> Outcome:
    marker = _last_id()
    response = call()
    return Outcome(_rows_after(marker), response)


def _zip(**changes: bytes) -> bytes:
    """The sample YOLO zip with some entries replaced (a corrupt image, a bad label...)."""
    source = zipfile.ZipFile(io.BytesIO(sample_data.yolo_zip(train=3, val=1)))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, changes.get(info.filename, source.read(info)))
    return out.getvalue()


GOOD = sample_data.yolo_zip(train=3, val=1)
CORRUPT = _zip(**{"images/train/0000.png": b"\x89PNG broken"})


@pytest.fixture
def upload_file() -> Iterator[Callable[[bytes], Any]]:
    """What DatasetsState.handle_upload does with the browser's bytes: a file on disk, reopened."""
    opened: list[Any] = []

    def make(data: bytes) -> Any:
        handle = tempfile.NamedTemporaryFile(suffix=".zip")  # noqa: SIM115 (closed below)
        handle.write(data)
        handle.flush()
        handle.seek(0)
        opened.append(handle)
        return handle

    yield make
    for handle in opened:
        handle.close()


# --- writes: (name, UI call, REST call) ------------------------------------------------------------

Write = tuple[
    str,
    Callable[[Shared, Actor, Callable[[bytes], Any], bytes], Any],
    Callable[[Shared, dict[str, str], bytes], httpx.Response],
]


def _base(s: Shared) -> str:
    return f"/api/v1/projects/{s.cast.project_id}/datasets"


WRITES: dict[str, Write] = {
    "upload": (
        "dataset.upload",
        lambda s, actor, disk, data: actions.upload_dataset(
            actor, project_id=s.cast.project_id, fileobj=disk(data), filename="p.zip", name="parity"
        ),
        lambda s, headers, data: s.client.post(
            _base(s),
            data={"name": "parity"},
            files={"file": ("p.zip", data, "application/zip")},
            headers=headers,
        ),
    ),
    "version_upload": (
        "dataset.version_upload",
        lambda s, actor, disk, data: actions.upload_version(
            actor, project_id=s.cast.project_id, dataset_id=s.dataset_id, fileobj=disk(data), filename="p.zip"
        ),
        lambda s, headers, data: s.client.post(
            f"{_base(s)}/{s.dataset_id}/versions",
            files={"file": ("p.zip", data, "application/zip")},
            headers=headers,
        ),
    ),
    "split": (
        "dataset.split",
        lambda s, actor, _disk, _data: actions.split(
            actor,
            project_id=s.cast.project_id,
            dataset_id=s.dataset_id,
            ratios={"train": 0.75, "val": 0.25, "test": 0.0},
            seed=3,
            method="random",
            from_version=1,
        ),
        lambda s, headers, _data: s.client.post(
            f"{_base(s)}/{s.dataset_id}/split",
            json={"train": 0.75, "val": 0.25, "test": 0.0, "seed": 3, "method": "random", "from_version": 1},
            headers=headers,
        ),
    ),
    "rename_classes": (
        "dataset.rename_classes",
        lambda s, actor, _disk, _data: actions.rename_classes(
            actor,
            project_id=s.cast.project_id,
            dataset_id=s.dataset_id,
            names={"circle": "disc"},
            from_version=1,
        ),
        lambda s, headers, _data: s.client.post(
            f"{_base(s)}/{s.dataset_id}/rename-classes",
            json={"names": {"circle": "disc"}, "from_version": 1},
            headers=headers,
        ),
    ),
}


def _one_row(outcome: Outcome) -> AuditEvent:
    assert len(outcome.rows) == 1, [(r.action, r.result, r.detail) for r in outcome.rows]
    return outcome.rows[0]


@pytest.mark.parametrize("kind", sorted(WRITES))
def test_a_member_s_write_writes_one_identical_row_through_both_channels(
    shared: Shared, upload_file: Callable[[bytes], Any], kind: str
) -> None:
    name, ui, rest = WRITES[kind]
    cast = shared.cast
    through_ui = _through_ui(lambda: ui(shared, _web(cast, "member"), upload_file, GOOD))
    through_rest = _through_rest(lambda: rest(shared, cast.bearer("member"), GOOD))
    assert not isinstance(through_ui.value, DomainError), through_ui.value
    assert through_rest.value.status_code == 201, through_rest.value.text
    ui_row, rest_row = _one_row(through_ui), _one_row(through_rest)
    assert (ui_row.channel, rest_row.channel) == ("web", "rest")
    assert ui_row.action == name and ui_row.result == audit.ALLOWED
    assert ui_row.actor_id == cast.users["member"] and ui_row.project_id == cast.project_id
    # A new dataset is the target of its own upload; every other write targets the shared dataset.
    ui_dataset, rest_dataset = through_ui.value.dataset_id, through_rest.value.json()["dataset_id"]
    assert ui_row.target == f"dataset:{ui_dataset}" and rest_row.target == f"dataset:{rest_dataset}"
    # Each call makes the next version, so the details differ only in the version they name.
    assert _key(ui_row)[:3] + _key(ui_row)[4:6] == _key(rest_row)[:3] + _key(rest_row)[4:6]
    version = re.compile(r"^v\d+")
    assert version.match(ui_row.detail) and version.match(rest_row.detail)
    assert version.sub("v#", ui_row.detail) == version.sub("v#", rest_row.detail)


REFUSALS = [
    ("viewer", audit.DENIED, "needs member, has viewer", 403),
    ("outsider", audit.DENIED, "not a member", 404),
]


@pytest.mark.parametrize("kind", sorted(WRITES))
@pytest.mark.parametrize(("part", "result", "why", "status"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_a_refused_write_writes_the_same_row_with_the_reason(
    shared: Shared,
    upload_file: Callable[[bytes], Any],
    kind: str,
    part: str,
    result: str,
    why: str,
    status: int,
) -> None:
    name, ui, rest = WRITES[kind]
    cast = shared.cast
    before = _versions(shared)
    through_ui = _through_ui(lambda: ui(shared, _web(cast, part), upload_file, GOOD))
    through_rest = _through_rest(lambda: rest(shared, cast.bearer(part), GOOD))
    assert isinstance(through_ui.value, DomainError) and through_ui.value.status_code == status
    assert through_rest.value.status_code == status
    ui_row, rest_row = _one_row(through_ui), _one_row(through_rest)
    assert _key(ui_row) == _key(rest_row)
    assert (ui_row.action, ui_row.result, ui_row.detail) == (name, result, why)
    assert ui_row.actor_id == cast.users[part] and ui_row.status_code == rest_row.status_code == status
    expected_target = f"project:{cast.project_id}" if kind == "upload" else f"dataset:{shared.dataset_id}"
    assert ui_row.target == expected_target
    assert (ui_row.channel, rest_row.channel) == ("web", "rest")
    assert _versions(shared) == before


def test_the_upload_page_s_early_check_refuses_like_the_upload_itself(shared: Shared) -> None:
    """DatasetsState.handle_upload refuses before keeping the browser's file: the same row as a
    refused REST upload (the upload it refuses)."""
    cast = shared.cast
    through_ui = _through_ui(
        lambda: actions.check_can_upload(_web(cast, "viewer"), project_id=cast.project_id)
    )
    through_rest = _through_rest(
        lambda: shared.client.post(
            _base(shared), files={"file": ("p.zip", GOOD, "application/zip")}, headers=cast.bearer("viewer")
        )
    )
    assert _key(_one_row(through_ui)) == _key(_one_row(through_rest))
    assert _one_row(through_ui).action == "dataset.upload"
    allowed = _through_ui(lambda: actions.check_can_upload(_web(cast, "member"), project_id=cast.project_id))
    assert allowed.value is None and allowed.rows == []  # a check that passes is not an upload


FAILURES: dict[str, tuple[bytes, str]] = {
    # kind -> (upload body, what the row's detail says)
    "upload": (CORRUPT, "corrupt or unreadable image (cannot identify image file 'images/train/0000.png')"),
    "version_upload": (CORRUPT, "images/train/0000.png: corrupt or unreadable image"),
}


@pytest.mark.parametrize("kind", sorted(FAILURES))
def test_a_rejected_upload_s_row_carries_the_validation_error(
    shared: Shared, upload_file: Callable[[bytes], Any], kind: str
) -> None:
    name, ui, rest = WRITES[kind]
    data, why = FAILURES[kind]
    cast = shared.cast
    before = _versions(shared)
    through_ui = _through_ui(lambda: ui(shared, _web(cast, "member"), upload_file, data))
    through_rest = _through_rest(lambda: rest(shared, cast.bearer("member"), data))
    assert isinstance(through_ui.value, DomainError) and through_rest.value.status_code == 422
    ui_row, rest_row = _one_row(through_ui), _one_row(through_rest)
    assert _key(ui_row) == _key(rest_row)
    assert (ui_row.action, ui_row.result, ui_row.status_code) == (name, audit.FAILED, 422)
    assert why in ui_row.detail and "BytesIO" not in ui_row.detail
    assert rest_row.detail == through_rest.value.json()["detail"][:500]
    assert _versions(shared) == before


def test_a_failed_split_and_rename_say_why(shared: Shared) -> None:
    cast = shared.cast
    base = f"{_base(shared)}/{shared.dataset_id}"
    cases = [
        (
            "dataset.split",
            lambda actor: actions.split(
                actor,
                project_id=cast.project_id,
                dataset_id=shared.dataset_id,
                ratios={"train": 0.5, "val": 0.1, "test": 0.1},
                method="random",
            ),
            lambda: shared.client.post(
                f"{base}/split",
                json={"train": 0.5, "val": 0.1, "test": 0.1, "method": "random"},
                headers=cast.bearer("member"),
            ),
        ),
        (
            "dataset.rename_classes",
            lambda actor: actions.rename_classes(
                actor, project_id=cast.project_id, dataset_id=shared.dataset_id, names={"hexagon": "x"}
            ),
            lambda: shared.client.post(
                f"{base}/rename-classes", json={"names": {"hexagon": "x"}}, headers=cast.bearer("member")
            ),
        ),
    ]
    for name, ui, rest in cases:
        through_ui = _through_ui(lambda ui=ui: ui(_web(cast, "member")))  # type: ignore[misc]
        through_rest = _through_rest(rest)
        assert through_rest.value.status_code == 422, through_rest.value.text
        ui_row, rest_row = _one_row(through_ui), _one_row(through_rest)
        assert _key(ui_row) == _key(rest_row)
        assert (ui_row.action, ui_row.result) == (name, audit.FAILED)
        assert ui_row.detail == through_ui.value.message == through_rest.value.json()["detail"]


# --- reads: refused ones are recorded, allowed ones are not ---------------------------------------

Read = tuple[str, Callable[[Shared, Actor], Any], Callable[[Shared], str]]

READS: dict[str, Read] = {
    "list": ("dataset.list", lambda s, a: actions.list_datasets(a, project_id=s.cast.project_id), _base),
    "versions": (
        "dataset.versions",
        lambda s, a: actions.list_versions(a, project_id=s.cast.project_id, dataset_id=s.dataset_id),
        lambda s: f"{_base(s)}/{s.dataset_id}/versions",
    ),
    "version": (
        "dataset.version",
        lambda s, a: actions.get_version(a, project_id=s.cast.project_id, dataset_id=s.dataset_id, version=1),
        lambda s: f"{_base(s)}/{s.dataset_id}/versions/1",
    ),
    "report": (
        "dataset.report",
        lambda s, a: actions.version_report(
            a, project_id=s.cast.project_id, dataset_id=s.dataset_id, version=1
        ),
        lambda s: f"{_base(s)}/{s.dataset_id}/versions/1/report",
    ),
    "stats": (
        "dataset.stats",
        lambda s, a: actions.version_stats(
            a, project_id=s.cast.project_id, dataset_id=s.dataset_id, version=1
        ),
        lambda s: f"{_base(s)}/{s.dataset_id}/versions/1/stats",
    ),
    "gallery": (
        "dataset.gallery",
        lambda s, a: actions.gallery(
            a, project_id=s.cast.project_id, dataset_id=s.dataset_id, version=1, with_thumbnails=True
        ),
        lambda s: f"{_base(s)}/{s.dataset_id}/versions/1/images",
    ),
    "thumbnail": (
        "dataset.thumbnail",
        lambda s, a: actions.thumbnail(
            a, project_id=s.cast.project_id, dataset_id=s.dataset_id, version=1, index=0
        ),
        lambda s: f"{_base(s)}/{s.dataset_id}/versions/1/images/0/thumbnail",
    ),
    "image": (
        "dataset.image",
        lambda s, a: actions.image_preview(
            a, project_id=s.cast.project_id, dataset_id=s.dataset_id, version=1, index=0
        ),
        lambda s: f"{_base(s)}/{s.dataset_id}/versions/1/images/0",
    ),
}


@pytest.mark.parametrize("kind", sorted(READS))
def test_reads_are_recorded_only_when_refused(shared: Shared, kind: str) -> None:
    name, ui, url = READS[kind]
    cast = shared.cast
    allowed_ui = _through_ui(lambda: ui(shared, _web(cast, "viewer")))
    allowed_rest = _through_rest(lambda: shared.client.get(url(shared), headers=cast.bearer("viewer")))
    assert not isinstance(allowed_ui.value, DomainError), allowed_ui.value
    assert allowed_rest.value.status_code == 200
    assert allowed_ui.rows == allowed_rest.rows == []

    refused_ui = _through_ui(lambda: ui(shared, _web(cast, "outsider")))
    refused_rest = _through_rest(lambda: shared.client.get(url(shared), headers=cast.bearer("outsider")))
    assert refused_rest.value.status_code == 404
    ui_row, rest_row = _one_row(refused_ui), _one_row(refused_rest)
    assert _key(ui_row) == _key(rest_row)
    assert (ui_row.action, ui_row.result, ui_row.detail) == (name, audit.DENIED, "not a member")
    assert ui_row.actor_id == cast.users["outsider"]
    assert (ui_row.channel, rest_row.channel) == ("web", "rest")


def test_a_missing_dataset_is_recorded_as_not_found(shared: Shared) -> None:
    cast = shared.cast
    through_ui = _through_ui(
        lambda: actions.list_versions(_web(cast, "member"), project_id=cast.project_id, dataset_id=987654)
    )
    through_rest = _through_rest(
        lambda: shared.client.get(f"{_base(shared)}/987654/versions", headers=cast.bearer("member"))
    )
    assert through_rest.value.status_code == 404
    ui_row, rest_row = _one_row(through_ui), _one_row(through_rest)
    assert _key(ui_row) == _key(rest_row)
    assert (ui_row.target, ui_row.result) == ("dataset:987654", audit.DENIED)
    assert ui_row.detail == "Dataset 987654 does not exist in this project"


def _versions(s: Shared) -> list[int]:
    from services.domain.models import DatasetVersion

    with session_scope() as session:
        return list(
            session.exec(
                select(DatasetVersion.version).where(DatasetVersion.dataset_id == s.dataset_id)
            ).all()
        )
