"""Realistic statements for benchmarks, from a fixed seed.

About 1.2 KB each: mbox or account actors from 20,000 learners, common verbs, 1,000
activities (100 courses of 9 modules) with definitions, results with score and duration,
context with registration, parent, grouping and a municipal unit extension.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

VERBS = [
    ("http://adlnet.gov/expapi/verbs/experienced", "experienced", 40),
    ("http://adlnet.gov/expapi/verbs/attempted", "attempted", 20),
    ("http://adlnet.gov/expapi/verbs/answered", "answered", 15),
    ("http://adlnet.gov/expapi/verbs/progressed", "progressed", 10),
    ("http://adlnet.gov/expapi/verbs/completed", "completed", 8),
    ("http://adlnet.gov/expapi/verbs/passed", "passed", 4),
    ("http://adlnet.gov/expapi/verbs/failed", "failed", 3),
]
UNITS = ["Oppvekst og utdanning", "Helse og omsorg", "Teknisk drift", "Kultur", "Administrasjon"]
START = datetime(2026, 6, 1, tzinfo=UTC)
SPAN_SECONDS = 90 * 86400  # the statements' timestamps fall in the 90 days from START
LATE_SECONDS = 3600  # how far an arriving statement's timestamp strays from its turn


class Generator:
    """Statements from a fixed seed. Their timestamps are spread at random over the 90 days,
    or, with ``arriving=N``, follow the order they are made in, as statements sent while
    learning happens do: the i-th falls at i/N of the 90 days, give or take an hour (and
    those made after the N-th go on at the same pace)."""

    def __init__(
        self,
        seed: int = 20261128,
        learners: int = 20_000,
        courses: int = 100,
        modules: int = 9,
        arriving: int | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.arriving = arriving
        self.made = 0
        self.learners = learners
        self.courses = courses
        self.modules = modules
        self.verbs = [v for v, _, w in VERBS for _ in range(w)]
        self.names = {v: n for v, n, _ in VERBS}

    def learner(self, n: int) -> dict[str, Any]:
        if n % 3 == 0:
            return {
                "objectType": "Agent",
                "name": f"Ansatt {n}",
                "account": {"homePage": "https://idp.kommune.example.no", "name": f"a{n}"},
            }
        return {"objectType": "Agent", "name": f"Ansatt {n}", "mbox": f"mailto:ansatt{n}@kommune.example.no"}

    def course(self, c: int) -> str:
        return f"https://kurs.example.no/kurs/{c}"

    def module(self, c: int, m: int) -> str:
        return f"https://kurs.example.no/kurs/{c}/modul/{m}"

    def statement(self) -> dict[str, Any]:
        rng = self.rng
        n = rng.randrange(self.learners)
        c = rng.randrange(self.courses)
        m = rng.randrange(self.modules)
        verb = rng.choice(self.verbs)
        if self.arriving is None:
            when = START + timedelta(seconds=rng.randrange(SPAN_SECONDS))
        else:
            turn = self.made * SPAN_SECONDS // self.arriving
            stray = rng.randrange(-LATE_SECONDS, LATE_SECONDS)
            when = START + timedelta(seconds=max(turn + stray, 0))
        self.made += 1
        statement: dict[str, Any] = {
            "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "actor": self.learner(n),
            "verb": {"id": verb, "display": {"en-US": self.names[verb], "nb": self.names[verb]}},
            "object": {
                "objectType": "Activity",
                "id": self.module(c, m),
                "definition": {
                    "name": {"nb": f"Kurs {c}, modul {m}", "en-US": f"Course {c}, module {m}"},
                    "description": {"nb": f"Modul {m} i kurs {c} om arbeid i kommunen"},
                    "type": "http://adlnet.gov/expapi/activities/module",
                },
            },
            "result": {
                "score": {"scaled": round(rng.random(), 3), "raw": rng.randrange(101), "min": 0, "max": 100},
                "success": rng.random() > 0.3,
                "completion": rng.random() > 0.5,
                "duration": f"PT{rng.randrange(1, 60)}M{rng.randrange(60)}S",
            },
            "context": {
                "registration": str(uuid.UUID(int=(n * 1000 + c), version=4)),
                "contextActivities": {
                    "parent": [{"id": self.course(c), "objectType": "Activity"}],
                    "grouping": [{"id": "https://kurs.example.no/program/kommune"}],
                },
                "platform": "Kommunens læringsportal",
                "language": "nb-NO",
                "extensions": {"https://kommune.example.no/xapi/unit": UNITS[n % len(UNITS)]},
            },
            "timestamp": when.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        }
        return statement

    def statements(self, count: int) -> Iterator[dict[str, Any]]:
        for _ in range(count):
            yield self.statement()


def write_jsonl(path: Path, statements: Iterator[dict[str, Any]]) -> None:
    """``statements`` as JSON Lines, the file ``lrs import`` reads."""
    with path.open("wb") as f:
        for s in statements:
            f.write(orjson.dumps(s) + b"\n")
