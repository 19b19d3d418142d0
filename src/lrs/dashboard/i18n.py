"""The dashboard's words in Norwegian (bokmål) and English, and numbers and dates in the
reader's locale (Babel's CLDR data: decimal comma and week numbers as Norwegians write them)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from functools import cache, lru_cache

from babel import Locale
from babel.dates import format_date
from babel.numbers import NumberPattern, parse_pattern

from lrs.xapi.langtags import parse_accept_language

LANGUAGES = {"nb": "nb_NO", "en": "en_GB"}
# What a cell without a figure shows (an en dash).
EMPTY = "\u2013"
DEFAULT = "nb"

TEXTS: dict[str, dict[str, str]] = {
    "nb": {
        "title": "Læringsoversikt",
        "skip": "Hopp til innholdet",
        "signin": "Logg inn",
        "signout": "Logg ut",
        "key": "Nøkkel",
        "secret": "Hemmelighet",
        "signin_help": "Logg inn med en nøkkel som har tilgangen analytics/read.",
        "signin_failed": (
            "Nøkkelen eller hemmeligheten er feil, eller nøkkelen mangler tilgangen analytics/read."
        ),
        "overview": "Oversikt",
        "courses": "Kurs",
        "course": "Kurs",
        "learners": "Deltakere",
        "started": "Startet",
        "completed": "Fullført",
        "completion_rate": "Fullføringsgrad",
        "pass_rate": "Bestått-andel",
        "time_spent": "Tid brukt (timer)",
        "assignments": "Obligatorisk opplæring",
        "cohort": "Enhet",
        "assigned": "Tildelt",
        "not_started": "Ikke startet",
        "in_progress": "Under arbeid",
        "overdue": "Forfalt",
        "due": "Frist",
        "group": "Gruppe",
        "by_group": "Fullføring per gruppe",
        "group_by": "Grupper etter",
        "period": "Periode",
        "all_time": "Hele perioden",
        "last_30_days": "Siste 30 dager",
        "custom": "Egendefinert (fra\u2013til)",
        "from_date": "Fra og med",
        "to_date": "Til og med",
        "bad_dates": (
            "Velg egendefinert periode med gyldige datoer, fra-datoen før til-datoen. Viser hele perioden."
        ),
        "scores": "Poengfordeling",
        "score_range": "Skalert score",
        "share": "Andel",
        "below_zero": "Under 0 %",
        "this_month": "Denne måneden",
        "this_year": "I år",
        "show": "Vis",
        "elements": "Læringselementer",
        "reached": "Nådd",
        "score_mean": "Snittscore",
        "self_assessment": "Egenvurdering (snitt)",
        "when": "Når det læres",
        "weekday": "Ukedag",
        "hour": "Time",
        "active_learners": "Aktive deltakere",
        "csv": "Last ned CSV",
        "suppressed_one": (
            "1 gruppe med færre enn {min} deltakere vises ikke "
            "(personvernregel: små grupper skal ikke kunne kjennes igjen)."
        ),
        "team": "Team",
        "authority": "Leverandør",
        "suppressed": (
            "{n} grupper med færre enn {min} deltakere vises ikke "
            "(personvernregel: små grupper skal ikke kunne kjennes igjen)."
        ),
        "no_data": "Ingen data ennå.",
        "learners_refused": (
            "Listen over deltakere krever tilgangen analytics/learners, fordi den viser enkeltpersoner."
        ),
        "status": "Status",
        "score": "Score",
        "name": "Navn",
        "learner": "Deltaker",
        "language": "Språk",
        "none": "(ingen)",
        "fewer_than": "færre enn {min}",
        "platforms": "Plattform (app eller nett)",
        "trend": "Fullføringsgrad for 8 uker siden og nå",
        "platform": "Plattform",
        "feedback": "Deltakernes vurdering av kurset",
        "scale": "Skala",
        "raters": "Har vurdert",
        "mean_raw": "Snitt på skalaen",
        "mean_scaled": "Snitt (0 til 100 %)",
        "all_scales": "Alle skalaer",
        "all_units": "Alle enheter",
        "fewer_short": "<{min}",
        "fewer_legend": "«<{min}» betyr færre enn {min} deltakere; tallet vises ikke (personvernregel).",
        "status_not_started": "Ikke startet",
        "status_in_progress": "Under arbeid",
        "status_completed": "Fullført",
        "status_passed": "Bestått",
        "status_failed": "Ikke bestått",
        "yes": "ja",
        "no": "nei",
        "as_of": "Tallene gjelder utsagn lagret før {when}.",
        "chart_of": "Diagram: {what}. Tallene står i tabellen under.",
    },
    "en": {
        "title": "Learning overview",
        "skip": "Skip to content",
        "signin": "Sign in",
        "signout": "Sign out",
        "key": "Key",
        "secret": "Secret",
        "signin_help": "Sign in with a key that has the analytics/read scope.",
        "signin_failed": "The key or secret is wrong, or the key lacks the analytics/read scope.",
        "overview": "Overview",
        "courses": "Courses",
        "course": "Course",
        "learners": "Learners",
        "started": "Started",
        "completed": "Completed",
        "completion_rate": "Completion rate",
        "pass_rate": "Pass rate",
        "time_spent": "Time spent (hours)",
        "assignments": "Mandatory training",
        "cohort": "Unit",
        "assigned": "Assigned",
        "not_started": "Not started",
        "in_progress": "In progress",
        "overdue": "Overdue",
        "due": "Due",
        "group": "Group",
        "by_group": "Completion by group",
        "group_by": "Group by",
        "period": "Period",
        "all_time": "All time",
        "last_30_days": "Last 30 days",
        "custom": "Custom (from\u2013to)",
        "from_date": "From",
        "to_date": "To (inclusive)",
        "bad_dates": "For a custom period, choose valid dates with the from date first. Showing all time.",
        "scores": "Score distribution",
        "score_range": "Scaled score",
        "share": "Share",
        "below_zero": "Below 0%",
        "this_month": "This month",
        "this_year": "This year",
        "show": "Show",
        "elements": "Learning elements",
        "reached": "Reached",
        "score_mean": "Mean score",
        "self_assessment": "Self-assessment (mean)",
        "when": "When people learn",
        "weekday": "Weekday",
        "hour": "Hour",
        "active_learners": "Active learners",
        "csv": "Download CSV",
        "suppressed_one": (
            "1 group with fewer than {min} learners is not shown "
            "(privacy rule: small groups must not be recognisable)."
        ),
        "team": "Team",
        "authority": "Vendor",
        "suppressed": (
            "{n} groups with fewer than {min} learners are not shown "
            "(privacy rule: small groups must not be recognisable)."
        ),
        "no_data": "No data yet.",
        "learners_refused": (
            "The list of learners needs the analytics/learners scope, because it shows individuals."
        ),
        "status": "Status",
        "score": "Score",
        "name": "Name",
        "learner": "Learner",
        "language": "Language",
        "none": "(none)",
        "fewer_than": "fewer than {min}",
        "platforms": "Platform (app or web)",
        "trend": "Completion rate 8 weeks ago and now",
        "platform": "Platform",
        "feedback": "How participants rate the course",
        "scale": "Scale",
        "raters": "Rated it",
        "mean_raw": "Mean on the scale",
        "mean_scaled": "Mean (0 to 100 %)",
        "all_scales": "All scales",
        "all_units": "All units",
        "fewer_short": "<{min}",
        "fewer_legend": "“<{min}” means fewer than {min} learners; the figure is not shown (privacy rule).",
        "status_not_started": "Not started",
        "status_in_progress": "In progress",
        "status_completed": "Completed",
        "status_passed": "Passed",
        "status_failed": "Failed",
        "yes": "yes",
        "no": "no",
        "as_of": "Figures cover statements stored before {when}.",
        "chart_of": "Chart: {what}. The figures are in the table below.",
    },
}

WEEKDAYS = {
    "nb": ["mandag", "tirsdag", "onsdag", "torsdag", "fredag", "lørdag", "søndag"],
    "en": ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"],
}


def choose(asked: str | None, remembered: str | None, accept_language: str | None) -> str:
    """The page's language: asked for on the page, else remembered, else the browser's."""
    for candidate in (asked, remembered):
        if candidate in LANGUAGES:
            return candidate  # type: ignore[return-value]
    for tag in parse_accept_language(accept_language):
        primary = tag.split("-")[0].lower()
        if primary in ("nb", "no", "nn"):
            return "nb"
        if primary == "en":
            return "en"
    return DEFAULT


# A page formats thousands of figures: parse each locale and number pattern once (as
# babel.numbers.format_decimal would on every call).
@cache
def _locale(name: str) -> Locale:
    return Locale.parse(name)


@cache
def _pattern(pattern: str) -> NumberPattern:
    return parse_pattern(pattern)


@lru_cache(maxsize=4096)
def _day(value: date, locale: str) -> str:
    """A date as the reader writes it (a learners page repeats a few due dates many times)."""
    return format_date(value, format="medium", locale=locale)


@dataclass(frozen=True)
class Words:
    """Words and number formats in one language."""

    lang: str

    @property
    def locale(self) -> str:
        return LANGUAGES[self.lang]

    def __call__(self, key: str, **values: object) -> str:
        return TEXTS[self.lang][key].format(**values)

    def number(self, value: float | int | None, digits: int = 0) -> str:
        if value is None:
            return EMPTY
        shown: str = _pattern("#,##0" + ("." + "0" * digits if digits else "")).apply(
            value, _locale(self.locale)
        )
        return shown

    def percent(self, value: float | None) -> str:
        return EMPTY if value is None else _pattern("#,##0 %").apply(value, _locale(self.locale))

    def day(self, value: date | None) -> str:
        return EMPTY if value is None else _day(value, self.locale)

    def weekday(self, index: int) -> str:
        return WEEKDAYS[self.lang][index]
