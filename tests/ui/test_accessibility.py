"""Accessibility of every page with axe-core (from the npm registry, injected by Playwright) as a
signed-in owner with data present, plus keyboard reach and a visible focus ring on the main forms.

axe-core lives in .tools/axe: `npm install --prefix .tools/axe --no-audit --no-fund axe-core@4`."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page

from tests.utils.browser import VIEWPORT, sign_in, wait_hydrated
from tests.utils.stack import Api, StackProcess

pytestmark = pytest.mark.ui

AXE = Path(__file__).resolve().parents[2] / ".tools" / "axe" / "node_modules" / "axe-core" / "axe.min.js"
BLOCKING = {"serious", "critical"}
# Rules switched off, each with the reason it is a false positive here. Empty: none are.
DISABLED_RULES: dict[str, str] = {}
AXE_OPTIONS = {
    "runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]},
    "rules": {rule: {"enabled": False} for rule in DISABLED_RULES},
}


def run_axe(page: Page) -> list[dict[str, Any]]:
    """Every axe violation on the page as it is now, each with the nodes it was found on."""
    if not AXE.exists():
        pytest.fail(f"{AXE} missing: npm install --prefix .tools/axe --no-audit --no-fund axe-core@4")
    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE))
    return page.evaluate(
        "async options => (await axe.run(document, options)).violations.map(v => ({"
        " id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))}))",
        AXE_OPTIONS,
    )


def report(name: str, violations: list[dict[str, Any]]) -> str:
    lines = []
    for v in violations:
        lines.append(f"[{name}] {v['impact']}: {v['id']} — {v['help']}")
        lines.extend(f"    {n['target']}: {(n['summary'] or '').splitlines()[-1:]}" for n in v["nodes"][:8])
    return "\n".join(lines)


@pytest.fixture(scope="module")
def data(stack: StackProcess, api: Api) -> dict[str, int]:
    """A project with the sample dataset and a finished job, so every page has something to show."""
    pid = api.project_id()
    sample = next(d for d in api.datasets(pid) if d["name"] == "shapes (sample)")
    # Reuse a run that other tests of the session finished; the queue may be busy with theirs.
    jobs = api.http.get(f"/projects/{pid}/jobs").raise_for_status().json()
    done = [j for j in jobs if j["state"] == "succeeded"]
    job = done[0] if done else api.start_job(pid, sample["id"], epochs=2, imgsz=64)
    if not done:
        api.wait_finished(pid, job["id"], timeout_s=600)
    api.http.put("/admin/settings", json={"signup_enabled": True}).raise_for_status()
    return {"project": pid, "dataset": sample["dataset_id"], "job": job["id"]}


@pytest.fixture(scope="module")
def owner(browser: Browser, stack: StackProcess) -> Iterator[Page]:
    page = browser.new_page(viewport=VIEWPORT)
    page.set_default_timeout(60_000)
    yield sign_in(page, stack)
    page.close()


def pages(data: dict[str, int]) -> list[tuple[str, str, str]]:
    """(name, path, selector that shows the page has loaded its data) for every signed-in page."""
    pid, job = data["project"], data["job"]
    return [
        ("dashboard", "/", "#jobs-table tr[data-job-id]"),
        ("datasets", f"/projects/{pid}/datasets", "#dataset-list"),
        ("dataset", f"/projects/{pid}/datasets/{data['dataset']}", "#gallery .gallery-tile img"),
        ("members", f"/projects/{pid}/members", "#members-table .avatar"),
        ("account", "/account", "#tokens-empty, #tokens-table"),
        ("admin", "/admin", "#audit-table"),
        ("train", f"/projects/{pid}/train", "#hyperparameters .hp-field"),
        ("jobs", f"/projects/{pid}/jobs", "#jobs-list tr[data-job-id]"),
        ("job", f"/jobs/{job}", "#metrics-chart .main-svg"),
        ("compare", f"/projects/{pid}/compare", "#runs-table tr[data-run-id]"),
        ("models", f"/projects/{pid}/models", "#models-table tr[data-job-id]"),
        ("analytics", "/analytics", "#chart-per-day .main-svg"),
    ]


def test_every_page_has_no_serious_axe_violations(
    browser: Browser, stack: StackProcess, data: dict[str, int], owner: Page, output_dir: Path
) -> None:
    found: dict[str, list[dict[str, Any]]] = {}
    # Signed-out pages first, in their own context.
    context = browser.new_context(viewport=VIEWPORT)
    anonymous = context.new_page()
    for name, path, selector in (("login", "/login", "#sign-in"), ("signup", "/signup", "#sign-up")):
        anonymous.goto(stack.web_url + path)
        wait_hydrated(anonymous, selector)
        found[name] = run_axe(anonymous)
    context.close()

    for name, path, selector in pages(data):
        owner.goto(stack.web_url + path)
        owner.wait_for_selector(selector)
        owner.wait_for_load_state("networkidle")
        found[name] = run_axe(owner)
        if name == "compare":  # also with runs selected: the chart, tables and parallel plot
            owner.click("#select-page")
            owner.click("#compare-runs")
            owner.wait_for_selector("#compare-chart .main-svg")
            owner.wait_for_selector("#parallel-chart .main-svg")
            found["compare (selected)"] = run_axe(owner)

    (output_dir / "axe-violations.json").write_text(json.dumps(found, indent=2))
    for name, violations in found.items():
        if violations:
            print(report(name, violations))
    blocking = {
        name: [v for v in violations if v["impact"] in BLOCKING] for name, violations in found.items()
    }
    blocking = {name: v for name, v in blocking.items() if v}
    assert not blocking, "\n" + "\n".join(report(name, v) for name, v in blocking.items())


def _focused(page: Page) -> dict[str, Any]:
    return page.evaluate(
        "() => { const el = document.activeElement; const s = getComputedStyle(el);"
        " return {id: el.id, tag: el.tagName.toLowerCase(), outline: s.outlineStyle,"
        " width: parseFloat(s.outlineWidth) || 0, shadow: s.boxShadow}; }"
    )


def _tab_through(page: Page, wanted: set[str], limit: int = 80) -> set[str]:
    reached: set[str] = set()
    for _ in range(limit):
        page.keyboard.press("Tab")
        focus = _focused(page)
        if focus["id"] in wanted:
            reached.add(focus["id"])
            ring = focus["outline"] != "none" and focus["width"] > 0
            visible = ring or focus["shadow"] not in ("", "none")
            assert visible, f"#{focus['id']} has no visible focus indicator: {focus}"
        if reached == wanted:
            break
    return reached


def test_keyboard_reaches_login_and_train_controls_with_visible_focus(
    browser: Browser, stack: StackProcess, data: dict[str, int]
) -> None:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(stack.web_url + "/login")
    wait_hydrated(page, "#sign-in")
    wanted = {"username", "password", "sign-in"}
    assert _tab_through(page, wanted) == wanted
    # And it works by keyboard alone: type, Tab, Enter.
    page.focus("#username")
    page.keyboard.type(stack.username)
    page.keyboard.press("Tab")
    page.keyboard.type(stack.password)
    page.keyboard.press("Enter")
    page.wait_for_url(lambda url: "/login" not in url)

    page.goto(f"{stack.web_url}/projects/{data['project']}/train")
    page.wait_for_selector("#hyperparameters .hp-field")
    wait_hydrated(page, "#start-training")
    wanted = {"job-name", "device", "hp-epochs", "hp-lr0", "start-training"}
    assert _tab_through(page, wanted, limit=200) == wanted
    context.close()
