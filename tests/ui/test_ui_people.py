"""Members, sign-up, account settings and admin pages in real headless Chromium against the stack."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from tests.ui.test_ui_datasets import make_viewer, open_as
from tests.utils.browser import VIEWPORT
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ui
PASSWORD = "people-pass-123"


def new_account(api: Api, prefix: str) -> str:
    username = f"{prefix}-{uuid.uuid4().hex[:6]}"
    api.http.put("/admin/settings", json={"signup_enabled": True}).raise_for_status()
    api.http.post("/auth/signup", json={"username": username, "password": PASSWORD}).raise_for_status()
    return username


def test_members_invite_change_role_and_remove(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    pid = api.project_id()
    friend = new_account(api, "friend")
    page = open_as(browser, stack, f"/projects/{pid}/members")
    page.wait_for_selector("#members-table .avatar")
    page.fill("#invite-username", friend)
    page.select_option("#invite-role", "viewer")
    page.click("#invite-submit")
    row = f"#members-table tr[data-username='{friend}']"
    page.wait_for_selector(f"{row}[data-role='viewer']")
    user_id = next(
        m["user_id"] for m in api.http.get(f"/projects/{pid}/members").json() if m["username"] == friend
    )
    page.select_option(f"#role-{user_id}", "member")
    page.wait_for_selector(f"{row}[data-role='member']")
    page.wait_for_selector("#members-notice >> text=is now member")
    page.screenshot(path=str(output_dir / "members.png"), full_page=True)
    page.fill("#invite-username", "no-such-user-xyz")
    page.click("#invite-submit")
    page.wait_for_selector("#members-action-error >> text=No active user")
    page.click(f"#remove-{user_id}")
    page.wait_for_selector(row, state="detached")
    assert all(m["username"] != friend for m in api.http.get(f"/projects/{pid}/members").json())


def test_viewer_cannot_manage_members(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    pid = api.project_id()
    username, password = make_viewer(api, stack, pid)
    page = open_as(browser, stack, f"/projects/{pid}/members", username, password)
    # The invite form is locked until the role is known, so wait for the members (and the role,
    # which arrives with them) before counting what is locked.
    page.wait_for_selector("#members-table .avatar")
    page.wait_for_selector("#invite-locked")
    assert page.locator("#invite-submit").count() == 0
    assert page.locator("#members-table select").count() == 0
    assert page.locator("#members-table .permission-locked").count() >= 2
    page.screenshot(path=str(output_dir / "members-as-viewer.png"), full_page=True)
    viewer = Api(stack.api_url, username, password)
    refused = viewer.http.post(
        f"/projects/{pid}/members", json={"username": stack.username, "role": "viewer"}
    )
    assert refused.status_code == 403


def test_sign_up_then_account_settings(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    api.http.put("/admin/settings", json={"signup_enabled": True}).raise_for_status()
    username = f"newbie-{uuid.uuid4().hex[:6]}"
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(30_000)
    page.goto(stack.web_url + "/signup")
    page.wait_for_selector("#sign-up")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.fill("#confirm", PASSWORD + "x")
    page.click("#sign-up")
    page.wait_for_selector("#signup-error >> text=differ")
    page.fill("#confirm", PASSWORD)
    page.screenshot(path=str(output_dir / "signup.png"), full_page=True)
    page.click("#sign-up")
    page.wait_for_url(stack.web_url + "/")
    page.goto(stack.web_url + "/account")
    page.wait_for_selector("#tokens-empty")
    page.fill("#avatar-name", "NB")
    page.select_option("#badge-color", "#7c3aed")
    page.click("#profile-save")
    page.wait_for_selector("#profile-notice")
    page.fill("#token-name", "ci")
    page.click("#token-create")
    page.wait_for_selector("#new-token")
    secret = page.inner_text("#new-token")
    assert secret.startswith("vtp_pat_")
    page.wait_for_selector("#tokens-table tr[data-token-name='ci']")
    page.screenshot(path=str(output_dir / "account.png"), full_page=True)
    me = httpx.Client(base_url=stack.api_url + "/api/v1", headers={"Authorization": f"Bearer {secret}"})
    profile = me.get("/auth/me").raise_for_status().json()
    assert (profile["avatar_name"], profile["badge_color"]) == ("NB", "#7c3aed")
    page.click("#tokens-table tr[data-token-name='ci'] button")
    page.wait_for_selector("#tokens-empty")
    assert me.get("/auth/me").status_code == 401

    api.http.put("/admin/settings", json={"signup_enabled": False}).raise_for_status()
    page.goto(stack.web_url + "/signup")
    page.wait_for_selector("#signup-closed")
    api.http.put("/admin/settings", json={"signup_enabled": True}).raise_for_status()


def test_admin_users_signup_switch_and_audit(
    browser: Browser, stack: StackProcess, api: Api, output_dir: Path
) -> None:
    target = new_account(api, "target")
    page = open_as(browser, stack, "/admin")
    page.wait_for_selector(f"#users-table tr[data-username='{target}']")
    page.wait_for_selector("#audit-table")
    page.click(f"#deactivate-{target}")
    page.wait_for_selector(f"#activate-{target}")
    assert (
        next(u for u in api.http.get("/admin/users").json() if u["username"] == target)["is_active"] is False
    )
    page.click(f"#activate-{target}")
    page.wait_for_selector(f"#deactivate-{target}")
    page.fill("#audit-action", "admin.user_update")
    page.click("#audit-filter")
    page.wait_for_function(
        "[...document.querySelectorAll('#audit-table tbody tr')]"
        ".every(r => r.innerText.includes('admin.user_update'))"
    )
    assert page.locator("#audit-table tbody tr").count() >= 2
    page.screenshot(path=str(output_dir / "admin.png"), full_page=True)
    before = api.http.get("/admin/settings").json()["signup_enabled"]
    page.click("#signup-switch")
    page.wait_for_selector("#admin-notice")
    assert api.http.get("/admin/settings").json()["signup_enabled"] is (not before)
    api.http.put("/admin/settings", json={"signup_enabled": True}).raise_for_status()

    # A non-admin sees a plain explanation and no controls.
    page = open_as(browser, stack, "/admin", target, PASSWORD)
    page.wait_for_selector("#admin-not-allowed")
    assert page.locator("#users-table").count() == 0


def test_admin_ranks_a_project_above_the_others(browser: Browser, stack: StackProcess, api: Api) -> None:
    pid = api.project_id()
    page = open_as(browser, stack, "/admin")
    page.wait_for_selector(f"#projects-priority-table tr[data-project-id='{pid}']")
    # Out of range: the field itself refuses it (its min/max), and nothing is saved.
    page.fill(f"#priority-{pid}", "11")
    page.click(f"#save-priority-{pid}")
    assert page.eval_on_selector(f"#priority-{pid}", "e => !e.checkValidity()")
    assert api.http.get(f"/projects/{pid}").json()["priority"] == 0
    try:
        page.fill(f"#priority-{pid}", "3")
        page.click(f"#save-priority-{pid}")
        page.wait_for_selector("#admin-notice")
        assert "priority 3" in page.inner_text("#admin-notice")
        assert api.http.get(f"/projects/{pid}").json()["priority"] == 3
        first = page.locator("#projects-priority-table tbody tr").first
        assert first.get_attribute("data-project-id") == str(pid)  # listed in dispatch order
    finally:
        api.http.put(f"/admin/projects/{pid}/priority", json={"priority": 0}).raise_for_status()
