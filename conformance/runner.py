"""Run the ADL LRS Conformance Test Suite against a fresh LRS and summarise the result.

The suite is not part of this repository: install it outside, following its own README, and
point ``LRS_CONFORMANCE_SUITE`` (or ``--suite``) at that copy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests.harness import (
    create_database,
    drop_database,
    make_credential,
    start_server,
    stop_server,
)

RESULTS = Path(__file__).resolve().parent / "results"
REQUIREMENT = re.compile(r"XAPI-\d{5}")
_SUMMARY_LINE = re.compile(r'^\{"total":\d+')


@dataclass
class Failure:
    title: str
    error: str
    requirements: list[str]


@dataclass
class Summary:
    version: str
    commit: str
    measured: str
    machine: str
    total: int
    passed: int
    failed: int
    not_run: int
    seconds: float
    stopped: str | None = None  # why the run was cut short, if it was
    failures: list[Failure] = field(default_factory=list)

    def by_requirement(self) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = defaultdict(list)
        for f in self.failures:
            for req in f.requirements or ["(no requirement id)"]:
                grouped[req].append(f.title)
        return dict(sorted(grouped.items()))


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parent,
        ).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def _machine() -> str:
    return (
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}"
    )


def run_suite(
    suite: Path,
    endpoint: str,
    key: str,
    secret: str,
    version: str,
    overall_seconds: float,
    stall_seconds: float,
) -> tuple[dict[str, Any] | None, str | None, float]:
    """Run one version of the suite; returns (its log, why it was stopped, seconds)."""
    command = [
        "node",
        "bin/console_runner.js",
        "-e",
        endpoint,
        "-a",
        "-u",
        key,
        "-p",
        secret,
        "-x",
        version,
        "-z",
    ]
    started = time.monotonic()
    process = subprocess.Popen(
        command, cwd=suite, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    state = {"progress": "", "changed": time.monotonic(), "log": None}

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            line = line.strip()
            if _SUMMARY_LINE.match(line) and line != state["progress"]:
                state["progress"] = line
                state["changed"] = time.monotonic()
            if line.startswith("Full run log written to"):
                state["log"] = line.rsplit(" ", 1)[-1]

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stopped = None
    while process.poll() is None:
        time.sleep(1)
        now = time.monotonic()
        if now - started > overall_seconds:
            stopped = f"overall limit of {overall_seconds:.0f} s reached"
        elif now - float(state["changed"]) > stall_seconds:  # type: ignore[arg-type]
            stopped = f"no test finished for {stall_seconds:.0f} s (a hung test)"
        if stopped:
            process.kill()
            break
    process.wait()
    reader.join(timeout=5)
    seconds = time.monotonic() - started
    log_path = state["log"]
    if not log_path or not Path(str(log_path)).exists():
        return None, stopped or "the suite wrote no log", seconds
    return json.loads(Path(str(log_path)).read_text()), stopped, seconds


def _failures(node: dict[str, Any] | None, trail: list[str]) -> list[Failure]:
    if not node:
        return []
    title = node.get("title") or node.get("name") or ""
    children = [c for c in node.get("tests") or [] if c]
    here = [*trail, title]
    if not children:
        if node.get("status") != "failed":
            return []
        requirements = sorted({r for t in here for r in REQUIREMENT.findall(t)})
        named = [t for t in here[2:] if t]
        title = " > ".join(t[:160] for t in named[-2:])
        return [Failure(title, str(node.get("error") or "")[:400], requirements)]
    return [f for child in children for f in _failures(child, here)]


def summarise(version: str, log: dict[str, Any] | None, stopped: str | None, seconds: float) -> Summary:
    totals = (log or {}).get("summary") or {}
    total = int(totals.get("total") or 0)
    passed = int(totals.get("passed") or 0)
    failed = int(totals.get("failed") or 0)
    return Summary(
        version=version,
        commit=_commit(),
        measured=datetime.now(UTC).isoformat(timespec="seconds"),
        machine=_machine(),
        total=total,
        passed=passed,
        failed=failed,
        not_run=max(total - passed - failed, 0),
        seconds=round(seconds, 1),
        stopped=stopped,
        failures=_failures((log or {}).get("log"), []),
    )


def write(summaries: list[Summary], out: Path, served: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    lines = [
        "# ADL LRS Conformance Test Suite: latest run",
        "",
        f"The LRS served xAPI {served} (`LRS_XAPI_VERSIONS={served}`).",
        "",
    ]
    lines += [
        "| version | passed | failed | not run | total | seconds | commit |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for s in summaries:
        data = asdict(s)
        data["failures_by_requirement"] = s.by_requirement()
        (out / f"{s.version}.json").write_text(json.dumps(data, indent=2) + "\n")
        lines.append(
            f"| {s.version} | {s.passed} | {s.failed} | {s.not_run} | {s.total} | "
            f"{s.seconds} | `{s.commit}` |"
        )
    for s in summaries:
        lines += ["", f"## {s.version}", "", f"Measured {s.measured} on {s.machine}."]
        if s.stopped:
            lines.append(f"Stopped early: {s.stopped}.")
        if not s.failures:
            lines.append("No failing tests.")
        for requirement, titles in s.by_requirement().items():
            lines.append(f"- **{requirement}**")
            lines += [f"  - {t}" for t in titles]
    (out / "SUMMARY.md").write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m conformance", description=__doc__)
    parser.add_argument(
        "--suite",
        default=os.environ.get("LRS_CONFORMANCE_SUITE"),
        help="path of an installed copy of the ADL suite (default: $LRS_CONFORMANCE_SUITE)",
    )
    parser.add_argument("--versions", default="1.0.3,2.0.0", help="the suite's versions to run")
    parser.add_argument(
        "--served",
        default="2.0.0,1.0.3",
        help="the xAPI versions the LRS serves (LRS_XAPI_VERSIONS); results of a setting other "
        "than the default go to results/served-<versions>/",
    )
    parser.add_argument("--overall-seconds", type=float, default=1200)
    parser.add_argument(
        "--stall-seconds", type=float, default=120, help="stop when no test has finished for this long"
    )
    parser.add_argument("--out", type=Path, help="default: results/, or results/served-<versions>/")
    args = parser.parse_args(argv)
    served = ",".join(sorted(v.strip() for v in args.served.split(",")))
    out = args.out or (RESULTS if served == "1.0.3,2.0.0" else RESULTS / f"served-{served}")
    if not args.suite or not (Path(args.suite) / "bin" / "console_runner.js").exists():
        print(
            "set LRS_CONFORMANCE_SUITE (or --suite) to an installed copy of "
            "adlnet/lrs-conformance-test-suite",
            file=sys.stderr,
        )
        return 2
    summaries = []
    for version in args.versions.split(","):
        url, admin = create_database()
        server = start_server(url, xapi_versions=served)
        try:
            cred = make_credential(url, label="ADL conformance suite")
            log, stopped, seconds = run_suite(
                Path(args.suite),
                server.xapi,
                cred.key,
                cred.secret,
                version,
                args.overall_seconds,
                args.stall_seconds,
            )
            summary = summarise(version, log, stopped, seconds)
        finally:
            stop_server(server)
            drop_database(url, admin)
        summaries.append(summary)
        print(
            f"{version}: {summary.passed}/{summary.total} passed, {summary.failed} failed, "
            f"{summary.not_run} not run in {summary.seconds} s"
            + (f" (stopped: {summary.stopped})" if summary.stopped else "")
        )
    write(summaries, out, served)
    print(f"summaries written to {out}")
    return 0 if all(s.failed == 0 and s.not_run == 0 and not s.stopped for s in summaries) else 1
