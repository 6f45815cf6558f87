"""Push for live pages: a committed change to a job reaches a watching page through real Redis;
a rolled-back one does not; without Redis the watcher says so and falls back to re-reading."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest

from services.domain.models import Job
from services.infra import live
from services.infra.db import session_scope
from tests.utils import aio
from tests.utils.rows import dataset_version_row

pytestmark = [pytest.mark.reliability, pytest.mark.usefixtures("backend")]


def _job(*, viewers: list[str] | None = None) -> int:
    """A job in a project of its own; each name in `viewers` gets a web session token as a
    viewer of that project (appended to the list in place of the name)."""
    from services.domain import auth, projects, tokens
    from services.domain.models import Role

    with session_scope() as session:
        user = auth.create_user(
            session, username=f"live-{uuid.uuid4().hex[:8]}", password="a-long-password-1"
        )
        project = projects.create_project(session, owner=user, name="live")
        version = dataset_version_row(session, project_id=project.id, created_by=user.id)
        job = Job(
            project_id=project.id,
            dataset_version_id=version.id,
            created_by=user.id,
            name="live",
            framework="ultralytics",
            task="detect",
            model="yolo11n.yaml",
            callback_secret=uuid.uuid4().hex,
        )
        session.add(job)
        session.flush()
        assert job.id is not None
        for i, name in enumerate(viewers or []):
            viewer = auth.create_user(
                session, username=f"{name}-{uuid.uuid4().hex[:8]}", password="a-long-password-1"
            )
            if name != "outsider":
                projects.add_member(
                    session,
                    acting=Role.owner,
                    project_id=project.id,
                    username=viewer.username,
                    role=Role.viewer,
                )
            (viewers or [])[i] = tokens.issue_session(session, user=viewer)
        return job.id


def _touch(job_id: int, *, commit: bool) -> None:
    class Rollback(Exception):
        pass

    try:
        with session_scope() as session:
            job = session.get(Job, job_id)
            assert job is not None
            job.current_epoch = (job.current_epoch or 0) + 1
            session.add(job)
            session.flush()
            if not commit:
                raise Rollback
    except Rollback:
        pass


async def _settled(watching: Any) -> None:
    """Until the hub has subscribed (in the background) and woken everyone once, as it does on
    each (re)connect, so that the next wake-up is the test's own."""
    for _ in range(50):
        if watching.connected:
            break
        await asyncio.sleep(0.05)
    await watching.changed(0.2)


async def _watch_then(job_id: int, action: object, timeout: float) -> tuple[bool, bool]:
    hub = live.hub()
    with hub.watch([live.job_channel(job_id)]) as watching:
        await _settled(watching)
        await asyncio.to_thread(action)  # type: ignore[arg-type]
        return await watching.changed(timeout), watching.connected


def test_a_committed_change_is_pushed_and_a_rolled_back_one_is_not() -> None:
    job_id = _job()
    changed, connected = aio.run(_watch_then(job_id, lambda: _touch(job_id, commit=True), 5.0))
    assert connected and changed
    changed, _ = aio.run(_watch_then(job_id, lambda: _touch(job_id, commit=False), 1.0))
    assert not changed, "a rolled-back write must not wake pages"


def test_without_redis_the_watcher_reports_that_push_is_down() -> None:
    async def check() -> bool:
        hub = live.Hub("redis://127.0.0.1:1/0")
        with hub.watch(["job:1"]) as watching:
            await watching.changed(1.5)
            return watching.connected

    assert aio.run(check()) is False


def test_pages_watching_one_job_share_one_read_and_each_is_checked() -> None:
    """Twenty pages of one job (two members' tabs and an outsider's) wake on one notice: the job
    is read once for all of them, every member's page gets the new epoch with its own role, and
    the outsider's page is refused."""
    from state.job_state import watched_job
    from state.shared_reads import shared

    users = ["member", "member", "outsider"]  # each user hashes a password: few users, many pages
    job_id = _job(viewers=users)
    tokens = [users[0]] * 10 + [users[1]] * 9 + [users[2]]

    async def check() -> tuple[list[object], int]:
        hub = live.hub()
        with hub.watch([live.job_channel(job_id)]) as watching:
            await _settled(watching)
            await asyncio.to_thread(_touch, job_id, commit=True)
            assert await watching.changed(5.0), "the committed change was not pushed"
            version = watching.version(live.job_channel(job_id))
            reads = shared("job-page", object)
            before = reads.started
            snaps = await asyncio.gather(*[watched_job(t, job_id, version) for t in tokens])
            return list(snaps), reads.started - before

    snaps, reads = aio.run(check())
    assert reads == 1, f"{reads} reads of one job for one notice"
    *members, outsider = snaps
    for snap in members:
        assert snap.detail is not None and snap.detail.current_epoch == 1  # type: ignore[attr-defined]
        assert snap.role == "viewer" and not snap.own  # type: ignore[attr-defined]
    assert outsider.detail is None and "not found" in outsider.error  # type: ignore[attr-defined]


def test_a_viewer_s_access_is_checked_once_and_a_removal_ends_it_at_once() -> None:
    """The second notice does not re-check a viewer (50 viewers cost 150 queries per epoch); a
    member removed from the project is refused on the very next notice, and a role change shows."""
    from sqlmodel import select

    from services.actions import jobs
    from services.actions.core import web_actor
    from services.domain import projects, tokens
    from services.domain.models import Membership, Role
    from state.job_state import viewer_access

    users = ["member"]
    job_id = _job(viewers=users)
    token = users[0]
    actor = web_actor(token)
    assert tokens.credential_notices().connected.wait(5.0), "not subscribed to credential notices"
    first = viewer_access(token, job_id)
    assert isinstance(first, jobs.JobAccess) and first.role == "viewer"
    assert (actor.user_id, job_id) in jobs._accesses, "a granted access was not remembered"

    with session_scope() as session:
        job = session.get(Job, job_id)
        row = session.exec(
            select(Membership).where(
                Membership.project_id == job.project_id, Membership.user_id == actor.user_id
            )
        ).one()
        project_id = job.project_id
        row.role = Role.admin
        session.add(row)
    promoted = viewer_access(token, job_id)
    assert isinstance(promoted, jobs.JobAccess) and promoted.role == "admin"

    with session_scope() as session:
        projects.remove_member(session, acting=Role.owner, project_id=project_id, user_id=actor.user_id)
    refused = viewer_access(token, job_id)
    assert not isinstance(refused, jobs.JobAccess) and "not found" in refused.error


def test_a_notice_gives_a_watched_channel_a_new_version() -> None:
    """A read keyed by the version seen before a notice is never reused after it."""

    async def check() -> None:
        hub = live.Hub("redis://127.0.0.1:1/0")  # no Redis needed: notices are handed in directly
        with hub.watch(["job:7"]):
            first = hub.version("job:7")
            hub._wake("job:8")  # nobody watches it: job:7 keeps its version
            assert hub.version("job:7") == first
            hub._wake("job:7")
            assert hub.version("job:7") != first

    aio.run(check())


def test_a_shared_read_is_redone_for_a_new_version_or_after_a_failure() -> None:
    from state.shared_reads import SharedReads

    calls: list[str] = []

    def read(answer: str) -> str:
        calls.append(answer)
        if answer == "boom":
            raise RuntimeError(answer)
        return answer

    async def check() -> None:
        reads: SharedReads[str] = SharedReads()
        assert await reads.get(1, "v1", lambda: read("a")) == "a"
        assert await reads.get(1, "v1", lambda: read("not read")) == "a"  # same version: kept
        assert await reads.get(1, "v2", lambda: read("b")) == "b"  # a newer version reads again
        with pytest.raises(RuntimeError):
            await reads.get(2, "v1", lambda: read("boom"))
        assert await reads.get(2, "v1", lambda: read("c")) == "c"  # a failed read is not kept

    aio.run(check())
    assert calls == ["a", "b", "boom", "c"]


def test_a_change_between_a_pages_read_and_its_subscription_is_not_missed() -> None:
    """A page reads in its load event and subscribes after, in the watcher that event starts: a
    change committed in between sends its notice to no one. So a page's first wait on a connected
    hub returns at once, and it reads again."""
    job_id = _job()

    async def scenario() -> tuple[bool, bool, bool]:
        hub = live.hub()
        with hub.watch([live.job_channel(job_id)]) as earlier:
            await _settled(earlier)  # the hub is subscribed now
            _touch(job_id, commit=True)  # after the page's read, before its watcher subscribes
            await asyncio.sleep(0.3)  # its notice has come and gone
            with hub.watch([live.job_channel(job_id)]) as page:
                return page.connected, await page.changed(0.1), await page.changed(0.3)

    connected, first, second = aio.run(scenario())
    assert connected and first, "the page's first wait must return at once"
    assert not second, "and only once: nothing changed since"
