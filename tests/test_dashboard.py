"""The dashboard in a real headless Chromium (Debian's `chromium`, driven by Playwright):
sign-in, every page in both languages, pickers, CSV, the learners scope, sign-out, and axe-core
on every page (no serious or critical violations).

Screenshots go to ``LRS_SCREENSHOTS`` (the committed set: ``docs/screenshots``), else to a
temporary directory.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from playwright.async_api import Browser, Page, async_playwright

from tests.harness import make_credential, new_store, rollups_folded
from tests.test_leader_analytics import (
    AFTER,
    DUE,
    FIRE,
    MIN_GROUP,
    MODULES,
    TREE,
    V2,
    course_statements,
    person,
    rating_statements,
)

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="module")
async def office(server) -> dict[str, Any]:
    """A store with cohorts, assignments and the fire-safety course; an analyst and a leader."""
    name = new_store(server.database_url, "dash", min_group_size=str(MIN_GROUP))
    creds = {
        role: make_credential(server.database_url, scopes, name, role)
        for role, scopes in (
            ("vendor", "statements/write"),
            ("hr", "cohorts"),
            ("analyst", "analytics/read"),
            ("leader", "analytics/read,analytics/learners"),
            ("writer", "statements/write"),
        )
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as c:
        statements = course_statements() + rating_statements()
        r = await c.post("/xapi/statements", json=statements, headers=V2, auth=creds["vendor"].auth)
        assert r.status_code == 200, r.text
        for cohort, parent in TREE.items():
            await c.put(f"/analytics/cohorts/{cohort}", json={"parent": parent}, auth=creds["hr"].auth)
        for cohort, learners in AFTER.items():
            r = await c.put(
                f"/analytics/cohorts/{cohort}/members",
                json=[person(n) for n in learners],
                auth=creds["hr"].auth,
            )
            assert r.status_code == 200
        # Sykehjem is inside Helse: its own assignment is not due yet, but its members are
        # overdue through Helse's.
        for cohort, due in [*DUE.items(), ("Sykehjem", datetime(2027, 1, 1, tzinfo=UTC))]:
            r = await c.put(
                f"/analytics/cohorts/{cohort}/assignments",
                json={"activity": FIRE, "due": due.isoformat()},
                auth=creds["hr"].auth,
            )
            assert r.status_code < 300, r.text
    await rollups_folded(server.database_url)
    return {"server": server, **creds}


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        await launched.close()


def shots() -> Path:
    target = Path(os.environ.get("LRS_SCREENSHOTS") or Path(os.environ.get("TMPDIR", "/tmp")) / "lrs-shots")
    target.mkdir(parents=True, exist_ok=True)
    return target


async def accessible(page: Page) -> None:
    """axe-core finds nothing serious or critical on the page."""
    result = await Axe().run(page)
    bad = [
        (v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3])
        for v in result.response["violations"]
        if v["impact"] in ("serious", "critical")
    ]
    assert bad == [], bad


async def sign_in(page: Page, base: str, cred: Any) -> None:
    await page.goto(base + "/dashboard")
    assert page.url.endswith("/dashboard/signin")
    await page.fill("#key", cred.key)
    await page.fill("#secret", cred.secret)
    await page.click("form.signin button[type=submit]")
    await page.wait_for_url(base + "/dashboard")


async def api(office: dict[str, Any], path: str, **params: Any) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=office["server"].url, auth=office["analyst"].auth) as c:
        r = await c.get("/analytics" + path, params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def cells(page: Page, table: str) -> list[list[str]]:
    return await page.eval_on_selector_all(
        f"#{table} tbody tr", "rows => rows.map(r => [...r.children].map(c => c.textContent.trim()))"
    )


async def test_pages_show_the_apis_figures_in_both_languages(office, browser):
    base = office["server"].url
    context = await browser.new_context(locale="nb-NO", accept_downloads=True)
    page = await context.new_page()
    await page.goto(base + "/dashboard/signin")
    await accessible(page)
    await page.screenshot(path=str(shots() / "signin-nb.png"), full_page=True)
    await sign_in(page, base, office["analyst"])
    assert await page.inner_text("h1") == "Oversikt"
    await accessible(page)
    await page.screenshot(path=str(shots() / "overview-nb.png"), full_page=True)

    # Mandatory training: the API's figures, in Norwegian number format.
    body = await api(office, "/assignments", activity=FIRE)
    rows = await cells(page, "assignments")
    want = [[g["group"], FIRE, g["assigned"], g["completed"], g["overdue"]] for g in body["groups"]]
    assert [[r[0], r[1], int(r[3]), int(r[4]), int(r[6])] for r in rows] == want
    assert rows[0][5].replace("\xa0", " ") == f"{round(body['groups'][0]['completion_rate'] * 100)} %"
    sykehjem = next(g for g in body["groups"] if g["group"] == "Sykehjem")
    assert sykehjem["overdue"] > 0  # through Helse, though its own due date is ahead

    # January: membership at its end, completions within it, nothing due yet.
    await page.goto(base + "/dashboard?period=custom&start=2026-01-01&end=2026-01-31")
    january = await api(
        office, "/assignments", activity=FIRE, since="2025-12-31T23:00:00Z", until="2026-01-31T23:00:00Z"
    )
    assert [[r[0], int(r[3]), int(r[4]), int(r[6])] for r in await cells(page, "assignments")] == [
        [g["group"], g["assigned"], g["completed"], g["overdue"]] for g in january["groups"]
    ]
    assert [g["completed"] for g in january["groups"]] != [g["completed"] for g in body["groups"]]
    await page.goto(base + "/dashboard")

    # Courses, with the completion rate eight weeks ago and now (every statement is older).
    listed = await api(office, "/activities", sort="activity", order="asc")
    fire = next(a for a in listed["activities"] if a["activity"] == FIRE)
    courses = await cells(page, "courses")
    course_row = next(r for r in courses if r[0] == FIRE)
    # Courses only: what statements showed under a course are its elements, on its page.
    elements = {a["activity"] for a in listed["activities"]} & set(MODULES)
    assert elements and not elements & {r[0] for r in courses}
    assert int(course_row[1]) == fire["learners_started"]
    rate = course_row[3]
    assert rate.replace("\xa0", " ") == f"{round(fire['completion_rate'] * 100)} %"
    assert course_row[4] == f"{rate} \u2192 {rate}"

    # A CSV download holds exactly what the table shows.
    async with page.expect_download() as info:
        await page.click("a[href*='csv=assignments']")
    download = await info.value
    text = Path(await download.path()).read_text()
    assert text.splitlines()[1].split(",")[:2] == rows[0][:2]

    # A course: completion by cohort equals the API's; small groups read "færre enn".
    await page.click("#courses a[href*='activity=']")
    await page.wait_for_url("**/dashboard/course?**")
    await page.select_option("#group", "language")
    await page.click("form.pickers button[type=submit]")
    await page.wait_for_url("**group=language**")
    await accessible(page)
    by_language = await api(office, "/completion", activity=FIRE, group_by="language")
    shown = await cells(page, "by-group")
    assert [(r[0], int(r[1])) for r in shown] == [
        (g["group"], g["learners_started"]) for g in by_language["groups"]
    ]
    note = await page.inner_text(
        "#by-group-title + figure ~ p.note, section[aria-labelledby='by-group-title'] p.note"
    )
    assert f"færre enn {MIN_GROUP}" in note and str(by_language["suppressed_groups"]) in note
    platforms = await api(office, "/completion", activity=FIRE, group_by="platform")
    assert [(r[0], int(r[1])) for r in await cells(page, "platforms")] == [
        (g["group"], g["learners_started"]) for g in platforms["groups"]
    ]
    feedback = await api(office, "/feedback", activity=FIRE)
    assert int((await cells(page, "feedback"))[0][1]) == feedback["groups"][0]["n"]
    # The score distribution: learners per tenth of the best scaled score, as the API counts.
    [everyone] = (await api(office, "/completion", activity=FIRE))["groups"]
    tenths = [r for r in await cells(page, "scores") if r[0] != "Under 0 %"]
    assert [int(r[1]) for r in tenths] == everyone["score"]["tenths"]
    assert tenths[0][0].replace("\xa0", " ") == "0\u201310 %"
    await page.screenshot(path=str(shots() / "course-nb.png"), full_page=True)

    # One unit: its figures only.
    await page.select_option("#unit", "Skole")
    await page.select_option("#group", "platform")
    await page.click("form.pickers button[type=submit]")
    await page.wait_for_url("**unit=Skole**")
    in_school = await api(office, "/completion", activity=FIRE, group_by="platform", cohort="Skole")
    assert [(r[0], int(r[1])) for r in await cells(page, "by-group")] == [
        (g["group"], g["learners_started"]) for g in in_school["groups"]
    ]
    await accessible(page)

    # A custom period, January in the store's zone (Oslo): the API's figures over that window.
    await page.select_option("#period", "custom")
    await page.fill("#start", "2026-01-01")
    await page.fill("#end", "2026-01-31")
    await page.click("form.pickers button[type=submit]")
    await page.wait_for_url("**period=custom**")
    january = await api(
        office,
        "/completion",
        activity=FIRE,
        group_by="platform",
        cohort="Skole",
        since="2025-12-31T23:00:00Z",
        until="2026-01-31T23:00:00Z",
    )
    assert [(r[0], int(r[1]), int(r[2])) for r in await cells(page, "by-group")] == [
        (g["group"], g["learners_started"], g["learners_completed"]) for g in january["groups"]
    ]
    assert january["groups"] != in_school["groups"]  # the window changed the figures
    # Dates the wrong way round: the page says so and shows all time.
    await page.fill("#start", "2026-02-01")
    await page.click("form.pickers button[type=submit]")
    await page.wait_for_url("**start=2026-02-01**")
    assert "fra-datoen" in await page.inner_text("main p[role=status]")
    assert [(r[0], int(r[1])) for r in await cells(page, "by-group")] == [
        (g["group"], g["learners_started"]) for g in in_school["groups"]
    ]
    await page.select_option("#period", "all")
    await page.click("form.pickers button[type=submit]")
    await page.wait_for_url("**period=all**")

    # English, from the link on the page; the choice is remembered.
    await page.click("a[hreflang=en]")
    assert await page.inner_text("h2#by-group-title") == "Completion by group"
    await accessible(page)
    await page.screenshot(path=str(shots() / "course-en.png"), full_page=True)
    await page.goto(base + "/dashboard")
    assert await page.inner_text("h1") == "Overview"
    await page.screenshot(path=str(shots() / "overview-en.png"), full_page=True)

    # The learners page is refused without its scope, and says why.
    response = await page.goto(base + f"/dashboard/learners?activity={FIRE}")
    assert response is not None and response.status == 403
    assert "analytics/learners" in await page.inner_text("main")
    await accessible(page)

    # Signing out ends the session at once: the old cookie opens nothing.
    cookies = await context.cookies()
    await page.click("header form button[type=submit]")
    await page.wait_for_url("**/dashboard/signin")
    session = next(c for c in cookies if c["name"] == "lrs_session")
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    async with httpx.AsyncClient(base_url=base, cookies={"lrs_session": session["value"]}) as c:
        r = await c.get("/dashboard", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/dashboard/signin"
    await context.close()


async def test_learners_page_with_its_scope(office, browser):
    base = office["server"].url
    context = await browser.new_context(locale="en-GB")
    page = await context.new_page()
    await sign_in(page, base, office["leader"])
    await page.goto(base + f"/dashboard/course?activity={FIRE}")
    await page.click("main a[href*='/dashboard/learners']")
    await page.wait_for_url("**/dashboard/learners?**")
    assert FIRE in await page.inner_text("h1")
    rows = await cells(page, "learners")
    assert len(rows) == sum(len(v) for v in AFTER.values())
    assert {r[0] for r in rows} >= {"Ansatt 0", "Ansatt 15"}
    await accessible(page)
    await page.screenshot(path=str(shots() / "learners-en.png"), full_page=True)
    # A module nobody is assigned: the learners who took it.
    module = f"{FIRE}/modul3"
    await page.goto(base + f"/dashboard/learners?activity={module}")
    taken = await api(office, "/activities", sort="activity", order="asc", limit=1000)
    reached = next(a for a in taken["activities"] if a["activity"] == module)["learners_started"]
    assert len(await cells(page, "learners")) == reached
    await page.click("a[hreflang=nb]")
    assert (await page.inner_text("h1")).startswith("Deltakere")
    await page.screenshot(path=str(shots() / "learners-nb.png"), full_page=True)
    await context.close()


async def test_sign_in_refuses_wrong_secrets_scopes_and_forged_forms(office):
    base = office["server"].url
    async with httpx.AsyncClient(base_url=base) as c:
        form = await c.get("/dashboard/signin")
        assert "script-src" not in form.headers["content-security-policy"]
        assert "default-src 'none'" in form.headers["content-security-policy"]
        csrf = form.cookies["lrs_signin"]
        for key, secret in (
            (office["analyst"].key, "wrong"),
            (office["writer"].key, office["writer"].secret),
        ):
            r = await c.post("/dashboard/signin", data={"key": key, "secret": secret, "csrf": csrf})
            assert r.status_code == 303 and r.headers["location"].endswith("failed=1")
            assert "lrs_session" not in r.cookies
        # A form posted from elsewhere carries no matching token.
        async with httpx.AsyncClient(base_url=base) as other:
            r = await other.post(
                "/dashboard/signin",
                data={
                    "key": office["analyst"].key,
                    "secret": office["analyst"].secret,
                    "csrf": uuid.uuid4().hex,
                },
            )
            assert r.status_code == 303 and "lrs_session" not in r.cookies


async def focused(page: Page) -> dict[str, Any]:
    return await page.evaluate(
        """() => { const e = document.activeElement; const s = getComputedStyle(e);
        return {tag: e.tagName, id: e.id, cls: e.className, href: e.getAttribute('href') || '',
                outline: s.outlineStyle, width: parseFloat(s.outlineWidth)}; }"""
    )


async def test_keyboard_alone_and_print(office, browser):
    """Everything can be reached and used with the keyboard, with a visible focus; the
    printed page keeps the figures and drops the controls."""
    base = office["server"].url
    context = await browser.new_context(locale="en-GB")
    page = await context.new_page()
    await sign_in(page, base, office["leader"])
    await page.goto(base + f"/dashboard/course?activity={FIRE}")
    await page.keyboard.press("Tab")
    first = await focused(page)
    assert "skip" in first["cls"] and first["outline"] != "none" and first["width"] >= 2
    assert (await page.eval_on_selector("a.skip", "e => e.getBoundingClientRect().left")) >= 0
    seen = []
    for _ in range(200):
        await page.keyboard.press("Tab")
        now = await focused(page)
        if now["tag"] == "BODY":  # past the last control: the page is done
            break
        assert now["outline"] != "none" and now["width"] >= 2, now
        seen.append(now)
    ids = {f["id"] for f in seen}
    assert {"period", "start", "end", "unit", "group"} <= ids
    assert any("csv=by-group" in f["href"] for f in seen)
    assert any("/dashboard/learners" in f["href"] for f in seen)
    # Pick a grouping and submit it with keys only.
    await page.focus("#group")
    await page.keyboard.press("End")
    await page.keyboard.press("Tab")
    assert (await focused(page))["tag"] == "BUTTON"
    await page.keyboard.press("Enter")
    await page.wait_for_url("**group=authority**")
    assert "Opplæring" not in await page.inner_text("h2#by-group-title")

    await page.emulate_media(media="print")
    hidden = await page.evaluate(
        """() => ['header nav', 'form.pickers', 'p.actions'].map(
            s => getComputedStyle(document.querySelector(s)).display)"""
    )
    assert hidden == ["none", "none", "none"]
    assert await page.is_visible("#by-group") and await page.is_visible("#hours")
    chosen = await page.inner_text("p.print-only")
    assert "Period: All time" in chosen and "Group by: Vendor" in chosen
    await page.screenshot(path=str(shots() / "course-print-en.png"), full_page=True)
    await context.close()


async def test_cookies_are_secure_behind_an_https_proxy(office):
    """Behind a TLS-terminating proxy on the same host (X-Forwarded-Proto: https), every
    cookie the dashboard sets carries Secure; over plain HTTP it cannot."""
    async with httpx.AsyncClient(base_url=office["server"].url) as c:
        proxied = await c.get("/dashboard/signin", headers={"X-Forwarded-Proto": "https"})
        plain = await c.get("/dashboard/signin")
        # The browser would send the Secure cookie back over HTTPS; this client speaks HTTP.
        c.cookies.set("lrs_signin", proxied.cookies["lrs_signin"])
        signed = await c.post(
            "/dashboard/signin",
            headers={"X-Forwarded-Proto": "https"},
            data={
                "key": office["analyst"].key,
                "secret": office["analyst"].secret,
                "csrf": proxied.cookies["lrs_signin"],
            },
        )
    assert "secure" in proxied.headers["set-cookie"].lower()
    assert "secure" not in plain.headers["set-cookie"].lower()
    session = next(h for h in signed.headers.get_list("set-cookie") if h.startswith("lrs_session="))
    assert "secure" in session.lower() and "httponly" in session.lower()
