"""The dashboard: server-rendered pages over the analytics read side, for leaders.

Sign-in with a credential that has ``analytics/read`` gives an HttpOnly, SameSite=Strict
session cookie; forms carry a CSRF token. Pages use no JavaScript; charts are SVG drawn
here, each next to the table with its figures, and every table downloads as CSV (the same
page with ``csv=<table>``).
"""

from __future__ import annotations

import asyncio
import csv
import io
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from sqlalchemy.ext.asyncio import AsyncConnection

from lrs.analytics import metrics
from lrs.analytics import reads as analytics_reads
from lrs.analytics.reads import Among, GroupFigures, Window
from lrs.api.services import Services, ServicesDep
from lrs.dashboard import charts
from lrs.dashboard.i18n import EMPTY, LANGUAGES, Words, choose
from lrs.ops import sessions as session_ops
from lrs.ops.caller import Caller
from lrs.scopes import ANALYTICS_LEARNERS, ANALYTICS_READ
from lrs.xapi.errors import TooManyRequests, Unauthorized
from lrs.xapi.langtags import best_language, parse_accept_language

HERE = Path(__file__).parent
T = TypeVar("T")
router = APIRouter(prefix="/dashboard", include_in_schema=False)
templates = Jinja2Templates(directory=HERE / "templates")
static = StaticFiles(directory=HERE / "static")

SESSION_COOKIE = "lrs_session"
SIGNIN_COOKIE = "lrs_signin"
LANG_COOKIE = "lrs_lang"
SESSION_SECONDS = 8 * 3600
TREND_WEEKS = 8
PERIODS = ("all", "30d", "month", "year", "custom")
GROUPINGS = ("cohort", "team", "platform", "language", "authority")
# No script at all, no inline styles; SVG is markup, not script.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


@dataclass
class Table:
    """A table as shown: its cells are text already in the reader's locale (or (text, link)),
    so the CSV is exactly what the page shows."""

    id: str
    caption: str
    headers: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    note: str | None = None
    chart: str | None = None
    csv_url: str = ""
    sort_links: list[str] | None = None
    text_columns: int = 1  # the first columns hold text (left-aligned); the rest figures


@dataclass
class Picker:
    """A select of ``options``; without options, a date field."""

    name: str
    label: str
    options: list[tuple[str, str]]
    value: str

    @property
    def shown(self) -> str:
        """What is picked, as "label: choice" (empty for an empty date)."""
        if not self.options:
            return f"{self.label}: {self.value}" if self.value else ""
        return next((f"{self.label}: {text}" for value, text in self.options if value == self.value), "")


def _words(request: Request) -> Words:
    return Words(
        choose(
            request.query_params.get("lang"),
            request.cookies.get(LANG_COOKIE),
            request.headers.get("accept-language"),
        )
    )


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _render(
    request: Request, w: Words, template: str, context: dict[str, Any], status: int = 200
) -> Response:
    other = "en" if w.lang == "nb" else "nb"
    page = templates.TemplateResponse(
        request,
        template,
        {
            "w": w,
            "other_lang": other,
            "other_label": "English" if other == "en" else "Norsk (bokmål)",
            "switch_url": str(request.url.include_query_params(lang=other)),
            **context,
        },
        status_code=status,
        headers=SECURITY_HEADERS,
    )
    if request.query_params.get("lang") in LANGUAGES:
        page.set_cookie(LANG_COOKIE, w.lang, max_age=365 * 86400, samesite="strict", secure=_secure(request))
    return page


async def _viewer(request: Request, app: Services) -> tuple[Caller, str] | None:
    """The signed-in caller and the session's CSRF token; None when not signed in."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    session = await session_ops.resume(app.db, token)
    if session is None:
        return None
    try:
        who = await app.authenticator.resume(session.credential_key)
    except Unauthorized:
        return None
    return (who, session.csrf) if who.has(ANALYTICS_READ) else None


def _zone(app: Services, who: Caller) -> ZoneInfo:
    """The store's time zone, else the installation's: what pages show times in."""
    return ZoneInfo(who.settings.zone(app.settings.default_timezone))


def _local(moment: datetime, zone: ZoneInfo) -> str:
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def _to_signin(request: Request) -> Response:
    return RedirectResponse("/dashboard/signin", status_code=303, headers=SECURITY_HEADERS)


# --- sign-in --------------------------------------------------------------------------------


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    w = _words(request)
    csrf = secrets.token_urlsafe(24)
    page = _render(
        request,
        w,
        "signin.html",
        {"heading": w("signin"), "csrf": csrf, "failed": request.query_params.get("failed") == "1"},
    )
    page.set_cookie(
        SIGNIN_COOKIE,
        csrf,
        max_age=3600,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/dashboard",
    )
    return page


@router.post("/signin")
async def signin(
    request: Request,
    app: ServicesDep,
    key: str = Form(max_length=200),
    secret: str = Form(max_length=200),
    csrf: str = Form(max_length=100),
    lang: str = Form(default="", max_length=5),
) -> Response:
    expected = request.cookies.get(SIGNIN_COOKIE)
    if not expected or not secrets.compare_digest(expected, csrf):
        return _to_signin(request)
    client = request.client.host if request.client else "-"
    try:
        who = await app.authenticator.sign_in(key, secret, client)
    except TooManyRequests as exc:
        return Response(str(exc.message), status_code=429, headers={"Retry-After": str(exc.retry_after)})
    except Unauthorized:
        who = None
    if who is None or not who.has(ANALYTICS_READ):
        return RedirectResponse("/dashboard/signin?failed=1", status_code=303, headers=SECURITY_HEADERS)
    token, _ = await session_ops.begin(app.db, who.key, SESSION_SECONDS)
    done = RedirectResponse("/dashboard", status_code=303, headers=SECURITY_HEADERS)
    done.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=SESSION_SECONDS,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
        path="/dashboard",
    )
    done.delete_cookie(SIGNIN_COOKIE, path="/dashboard")
    return done


@router.post("/signout")
async def signout(request: Request, app: ServicesDep, csrf: str = Form(max_length=100)) -> Response:
    viewer = await _viewer(request, app)
    token = request.cookies.get(SESSION_COOKIE)
    if viewer is not None and token and secrets.compare_digest(viewer[1], csrf):
        await session_ops.end(app.db, token)
    done = _to_signin(request)
    done.delete_cookie(SESSION_COOKIE, path="/dashboard")
    return done


# --- pages ----------------------------------------------------------------------------------


@dataclass
class Period:
    """The period picked: one of PERIODS, with its dates when it is ``custom``."""

    name: str
    start: str = ""  # YYYY-MM-DD, the first day
    end: str = ""  # YYYY-MM-DD, the last day
    invalid: bool = False

    @classmethod
    def picked(cls, name: str, start: str, end: str) -> Period:
        if name not in PERIODS:
            return cls("all")
        if name != "custom":
            return cls(name)
        try:
            first, last = date.fromisoformat(start), date.fromisoformat(end)
        except ValueError:
            return cls("all", start, end, invalid=True)
        if first > last:
            return cls("all", start, end, invalid=True)
        return cls(name, first.isoformat(), last.isoformat())

    def query(self) -> dict[str, str]:
        """The query parameters that pick this period again (for links)."""
        if self.name == "custom":
            return {"period": "custom", "start": self.start, "end": self.end}
        return {"period": self.name}


def _window(period: Period, zone: ZoneInfo) -> Window:
    """The period picked, as whole hours (custom: whole days) in the store's zone."""
    if period.name == "custom":
        first = datetime.combine(date.fromisoformat(period.start), datetime.min.time(), zone)
        last = date.fromisoformat(period.end)
        after = datetime.combine(last + timedelta(days=1), datetime.min.time(), zone)
        return Window(first.astimezone(UTC), after.astimezone(UTC))
    now = datetime.now(zone).replace(minute=0, second=0, microsecond=0)
    if period.name == "30d":
        return Window((now - timedelta(days=30)).astimezone(UTC), None)
    if period.name == "month":
        return Window(now.replace(day=1, hour=0).astimezone(UTC), None)
    if period.name == "year":
        return Window(now.replace(month=1, day=1, hour=0).astimezone(UTC), None)
    return Window(None, None)


def _name(request: Request, names: dict[str, dict[str, str]], activity: str) -> str:
    name = names.get(activity)
    if not name:
        return activity
    key = best_language(list(name), parse_accept_language(request.headers.get("accept-language")))
    return name[key] if key else activity


def _group_label(w: Words, group: Any) -> str:
    return w("none") if group is None else str(group)


def _suppressed(w: Words, n: int, min_group: int) -> str | None:
    if not n:
        return None
    return w("suppressed_one", min=min_group) if n == 1 else w("suppressed", n=n, min=min_group)


def _finish(request: Request, tables: list[Table]) -> Response | None:
    """The CSV of one table when asked for (``csv=<id>``); else give each its CSV link."""
    wanted = request.query_params.get("csv")
    for t in tables:
        t.csv_url = str(request.url.include_query_params(csv=t.id))
        if wanted == t.id:
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(t.headers)
            for row in t.rows:
                writer.writerow([c if isinstance(c, str) else c[0] for c in row])
            return Response(
                out.getvalue(),
                media_type="text/csv; charset=utf-8",
                headers={**SECURITY_HEADERS, "Content-Disposition": f'attachment; filename="{t.id}.csv"'},
            )
    return None


def _trend(w: Words, trend: analytics_reads.Trend | None, min_group: int) -> str:
    """The completion rate eight weeks ago and now, e.g. "48 % → 62 %" (while fewer than
    the minimum had started, no rate)."""
    if trend is None:
        return EMPTY

    def rate(started: int, completed: int) -> str:
        return w.percent(completed / started) if started >= min_group else EMPTY

    return f"{rate(trend.started_then, trend.completed_then)} \u2192 {rate(trend.started, trend.completed)}"


def _period_pickers(w: Words, period: Period) -> list[Picker]:
    """The period picker and the custom period's two dates (used when it is picked)."""
    labels = {
        "all": w("all_time"),
        "30d": w("last_30_days"),
        "month": w("this_month"),
        "year": w("this_year"),
        "custom": w("custom"),
    }
    return [
        Picker("period", w("period"), [(p, labels[p]) for p in PERIODS], period.name),
        Picker("start", w("from_date"), [], period.start),
        Picker("end", w("to_date"), [], period.end),
    ]


@router.get("")
async def overview(
    request: Request, app: ServicesDep, period: str = "all", start: str = "", end: str = ""
) -> Response:
    viewer = await _viewer(request, app)
    if viewer is None:
        return _to_signin(request)
    who, csrf = viewer
    w = _words(request)
    picked = Period.picked(period, start, end)
    zone = _zone(app, who)
    window = _window(picked, zone)
    min_group = who.settings.min_group_size
    store = who.store_id

    async def first(c: AsyncConnection) -> tuple[datetime, dict[str, Any]]:
        status = await analytics_reads.assignment_status(c, store, window)
        return await analytics_reads.as_of(c, store), metrics.assignment_status(status, min_group)

    async def then_and_names(c: AsyncConnection) -> tuple[list[analytics_reads.Trend], dict[str, Any]]:
        shown = {r["activity"] for r in listed["activities"]} | {a["activity"] for a in status["assignments"]}
        trends = await analytics_reads.trends(c, store, [r["activity"] for r in listed["activities"]], then)
        return trends, await analytics_reads.activity_names(c, store, shown)

    # The trend starts at the local midnight that ended the week seven Mondays ago.
    monday = datetime.now(zone).replace(hour=0, minute=0, second=0, microsecond=0)
    then = monday - timedelta(days=monday.weekday(), weeks=TREND_WEEKS - 1) + timedelta(weeks=1)
    as_of, status = await analytics_reads.read(app.db, first, who.key)
    summaries = await analytics_reads.read_activity_summaries(app.db, who.key, store, window, top_level=True)
    listed = metrics.activities(summaries, "learners_started", True, 50, 0, min_group)
    found_trends, names = await analytics_reads.read(app.db, then_and_names, who.key)
    trend_of = {t.activity: t for t in found_trends}
    courses = Table(
        "courses",
        w("courses"),
        [w("course"), w("started"), w("completed"), w("completion_rate"), w("trend"), w("time_spent")],
        note=_suppressed(w, listed["suppressed_groups"], min_group),
    )
    # Looked up once: url_for walks every route of the app, and a page links hundreds of rows.
    course_page = request.url_for("dashboard-course")
    for r in listed["activities"]:
        link = str(course_page.include_query_params(activity=r["activity"], **picked.query()))
        courses.rows.append(
            [
                (_name(request, names, r["activity"]), link),
                w.number(r["learners_started"]),
                w.number(r["learners_completed"]),
                w.percent(r["completion_rate"]),
                _trend(w, trend_of.get(r["activity"]), min_group),
                w.number(r["time_spent_seconds"] / 3600, 1),
            ]
        )
    courses.chart = charts.bars(
        w("completion_rate"),
        [
            (str(row[0][0]), r["completion_rate"], str(row[3]))
            for row, r in zip(courses.rows[:12], listed["activities"], strict=False)
        ],
    )
    mandatory = Table(
        "assignments",
        w("assignments"),
        [
            w("cohort"),
            w("course"),
            w("due"),
            w("assigned"),
            w("completed"),
            w("completion_rate"),
            w("overdue"),
        ],
        text_columns=2,
    )
    for a in status["assignments"]:
        link = str(course_page.include_query_params(activity=a["activity"], group="cohort", **picked.query()))
        mandatory.rows.append(
            [
                a["cohort"],
                (_name(request, names, a["activity"]), link),
                w.day(datetime.fromisoformat(a["due"]).astimezone(zone).date()) if a["due"] else EMPTY,
                w.number(a["assigned"]),
                w.number(a["completed"]),
                w.percent(a["completion_rate"]),
                w.number(a["overdue"]),
            ]
        )
    mandatory.note = _suppressed(w, status["suppressed_groups"], min_group)
    tables = [mandatory, courses] if mandatory.rows else [courses]
    return _finish(request, tables) or _render(
        request,
        w,
        "page.html",
        {
            "heading": w("overview"),
            "signed_in": True,
            "csrf": csrf,
            "tables": tables,
            "pickers": _period_pickers(w, picked),
            "hidden": [],
            "action": "/dashboard",
            "message": w("bad_dates") if picked.invalid else None,
            "as_of": _local(as_of, zone),
        },
    )


@router.get("/course", name="dashboard-course")
async def course(
    request: Request,
    app: ServicesDep,
    activity: str = "",
    period: str = "all",
    start: str = "",
    end: str = "",
    group: str = "cohort",
    unit: str = "",
) -> Response:
    viewer = await _viewer(request, app)
    if viewer is None:
        return _to_signin(request)
    who, csrf = viewer
    w = _words(request)
    picked = Period.picked(period, start, end)
    group = group if group in GROUPINGS else "cohort"
    zone = _zone(app, who)
    window = _window(picked, zone)
    min_group = who.settings.min_group_size
    store = who.store_id

    def read(work: Callable[[AsyncConnection], Awaitable[T]]) -> Awaitable[T]:
        return analytics_reads.read(app.db, work, who.key)

    units = await read(lambda c: analytics_reads.cohort_names(c, store))
    within = unit if unit in units else None

    def completion(group_by: str | None) -> Any:
        among = Among(group_by, within)
        return read(lambda c: analytics_reads.completion(c, store, activity, window, among))

    async def funnel(c: AsyncConnection) -> tuple[list[str], Any]:
        kids = await analytics_reads.child_activities(c, store, activity)
        return kids, await analytics_reads.reach(c, store, activity, kids, window, Among(None, within))

    # Independent reads, each on a connection of its own: the page waits for the slowest.
    as_of, groups, platforms, everyone, ratings, (kids, steps), cells = await asyncio.gather(
        read(lambda c: analytics_reads.as_of(c, store)),
        completion(group),
        completion("platform"),
        completion(None),
        read(lambda c: analytics_reads.ratings(c, store, activity, window, Among(None, within))),
        read(funnel),
        read(lambda c: analytics_reads.hours(c, store, activity, zone.key, window, Among(None, within))),
    )
    names = await read(lambda c: analytics_reads.activity_names(c, store, {activity, *kids}))
    title = _name(request, names, activity)
    body = metrics.completion(activity, groups, group, min_group)
    by_group = Table(
        "by-group",
        w("by_group"),
        [
            w("group"),
            w("started"),
            w("completed"),
            w("completion_rate"),
            w("pass_rate"),
            w("score_mean"),
            w("time_spent"),
        ],
        note=_suppressed(w, body["suppressed_groups"], min_group),
    )
    for g in body["groups"]:
        by_group.rows.append(
            [
                _group_label(w, g["group"]),
                w.number(g["learners_started"]),
                w.number(g["learners_completed"]),
                w.percent(g["completion_rate"]),
                w.percent(g["pass_rate"]),
                w.percent(g["score"]["mean"]),
                w.number(g["time_spent_seconds"]["total"] / 3600, 1),
            ]
        )
    by_group.chart = charts.bars(
        w("by_group"),
        [
            (row[0], g["completion_rate"], row[3])
            for row, g in zip(by_group.rows, body["groups"], strict=True)
        ],
    )
    shown = metrics.elements(activity, [(s, _name(request, names, s.activity)) for s in steps], min_group)
    elements = Table(
        "elements",
        w("elements"),
        [
            w("elements"),
            w("reached"),
            w("completed"),
            w("completion_rate"),
            w("pass_rate"),
            w("score_mean"),
            w("self_assessment"),
        ],
        note=_suppressed(w, shown["suppressed_groups"], min_group),
    )
    for e in shown["elements"]:
        elements.rows.append(
            [
                e["name"] or e["activity"],
                w.number(e["learners_reached"]),
                w.number(e["learners_completed"]),
                w.percent(e["completion_rate"]),
                w.percent(e["pass_rate"]),
                w.percent(e["score"]["mean"]),
                w.percent(e["self_assessment"]["mean_scaled"]),
            ]
        )
    elements.chart = charts.bars(
        w("elements"),
        [
            (row[0], e["learners_reached"] / max(shown["elements"][0]["learners_reached"], 1), row[1])
            for row, e in zip(elements.rows, shown["elements"], strict=True)
        ],
    )
    heat = metrics.hours(cells, zone, min_group)
    active = {(c["weekday"], c["hour"]): c["active_learners"] for c in heat["cells"]}
    hours = Table(
        "hours",
        w("when"),
        [w("weekday"), *[f"{h:02d}" for h in range(24)]],
        note=w("fewer_legend", min=min_group) if heat["suppressed_groups"] else None,
    )
    if any(active.values()):
        hours.rows = [
            [
                w.weekday(d),
                *[
                    w.number(active[(d, h)]) if (d, h) in active else w("fewer_short", min=min_group)
                    for h in range(24)
                ],
            ]
            for d in range(7)
        ]
        hours.chart = charts.grid(w("when"), active, [w.weekday(d) for d in range(7)])
    split = metrics.completion(activity, platforms, "platform", min_group)
    platform = Table(
        "platforms",
        w("platforms"),
        [w("platform"), w("started"), w("completed"), w("completion_rate")],
        note=_suppressed(w, split["suppressed_groups"], min_group),
    )
    total = sum(g["learners_started"] for g in split["groups"]) or 1
    for g in split["groups"]:
        platform.rows.append(
            [
                _group_label(w, g["group"]),
                w.number(g["learners_started"]),
                w.number(g["learners_completed"]),
                w.percent(g["completion_rate"]),
            ]
        )
    platform.chart = charts.bars(
        w("platforms"),
        [
            (row[0], g["learners_started"] / total, row[1])
            for row, g in zip(platform.rows, split["groups"], strict=True)
        ],
    )
    rated = metrics.feedback(activity, ratings, None, min_group)
    feedback = Table(
        "feedback",
        w("feedback"),
        [w("scale"), w("raters"), w("mean_raw"), w("mean_scaled")],
        note=_suppressed(w, rated["suppressed_groups"], min_group),
    )
    for g in rated["groups"]:
        if not g["n"]:
            continue
        feedback.rows.append([w("all_scales"), w.number(g["n"]), EMPTY, w.percent(g["mean_scaled"])])
        for scale in g["scales"]:
            feedback.rows.append(
                [
                    f"{w.number(scale['min'])}\u2013{w.number(scale['max'])}",
                    w.number(scale["n"]),
                    w.number(scale["mean_raw"], 1),
                    EMPTY,
                ]
            )
    tables = [by_group, platform, elements, _scores(w, activity, everyone, min_group), feedback, hours]
    labels = {g: w(g) for g in ("team", "platform", "language", "authority")} | {"cohort": w("cohort")}
    unit_options = [("", w("all_units")), *[(u, u) for u in units]]
    return _finish(request, tables) or _render(
        request,
        w,
        "page.html",
        {
            "heading": title,
            "signed_in": True,
            "csrf": csrf,
            "tables": tables,
            "pickers": [
                *_period_pickers(w, picked),
                Picker("unit", w("cohort"), unit_options, within or ""),
                Picker("group", w("group_by"), [(g, labels[g]) for g in GROUPINGS], group),
            ],
            "message": w("bad_dates") if picked.invalid else None,
            "hidden": [("activity", activity)],
            "action": "/dashboard/course",
            "links": [
                (
                    w("learners"),
                    str(request.url_for("dashboard-learners").include_query_params(activity=activity)),
                )
            ]
            if who.has(ANALYTICS_LEARNERS)
            else [],
            "as_of": _local(as_of, zone),
        },
    )


def _scores(w: Words, activity: str, everyone: list[GroupFigures], min_group: int) -> Table:
    """How many learners' best scaled score fell in each tenth (the whole group, or nothing
    while fewer than the minimum have started)."""
    body = metrics.completion(activity, everyone, None, min_group)
    table = Table(
        "scores",
        w("scores"),
        [w("score_range"), w("learners"), w("share")],
        note=_suppressed(w, body["suppressed_groups"], min_group),
    )
    if not body["groups"] or not body["groups"][0]["score"]["n"]:
        return table
    score = body["groups"][0]["score"]
    bins = [(w("below_zero"), score["below_zero"])] if score["below_zero"] else []
    for tenth, n in enumerate(score["tenths"]):
        bins.append((f"{w.number(tenth * 10)}\u2013{w.percent((tenth + 1) / 10)}", n))
    for label, n in bins:
        table.rows.append([label, w.number(n), w.percent(n / score["n"])])
    table.chart = charts.bars(
        w("scores"),
        [(label, n / score["n"], row[2]) for (label, n), row in zip(bins, table.rows, strict=True)],
    )
    return table


@router.get("/learners", name="dashboard-learners")
async def learners(request: Request, app: ServicesDep, activity: str = "", sort: str = "learner") -> Response:
    viewer = await _viewer(request, app)
    if viewer is None:
        return _to_signin(request)
    who, csrf = viewer
    w = _words(request)
    context: dict[str, Any] = {"heading": w("learners"), "signed_in": True, "csrf": csrf, "tables": []}
    if not who.has(ANALYTICS_LEARNERS):
        return _render(request, w, "page.html", {**context, "message": w("learners_refused")}, status=403)
    zone = _zone(app, who)

    async def work(c: AsyncConnection) -> tuple[Any, ...]:
        everyone = Window(None, None)
        found = await analytics_reads.assigned_learners(c, who.store_id, activity, everyone, None)
        # Nothing assigned: the learners who took the course, so there is still a list to act on.
        taking = [] if found else await analytics_reads.progress(c, who.store_id, activity, everyone)
        return found, taking, await analytics_reads.activity_names(c, who.store_id, {activity})

    rows, taking, names = await analytics_reads.read(app.db, work, who.key)
    listed = metrics.assigned_learners(rows, datetime.now(UTC)) or [
        {**r, "overdue": False, "due": None} for r in metrics.learners(taking)
    ]
    columns = ["name", "status", "score", "time_spent_seconds", "due"]
    sort = sort if sort in columns else "name"
    listed.sort(key=lambda r: (r[sort] is None, r[sort] if r[sort] is not None else 0))
    table = Table(
        "learners",
        w("learners"),
        [w("learner"), w("status"), w("score"), w("time_spent"), w("due")],
        text_columns=2,
        sort_links=[str(request.url.include_query_params(sort=c)) for c in columns],
    )
    for r in listed:
        table.rows.append(
            [
                r["name"] or r["learner"],
                w(f"status_{r['status']}") + (f" ({w('overdue').lower()})" if r["overdue"] else ""),
                w.percent(r["score"]),
                w.number(r["time_spent_seconds"] / 3600, 1),
                w.day(datetime.fromisoformat(r["due"]).astimezone(zone).date()) if r["due"] else EMPTY,
            ]
        )
    heading = f"{w('learners')}: {_name(request, names, activity)}"
    return _finish(request, [table]) or _render(
        request, w, "page.html", {**context, "tables": [table], "heading": heading}
    )
