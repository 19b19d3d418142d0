"""Export and import speed and memory, against the COPY ceiling measured in the same run.

    python -m bench.transfer [--statements 200000] [--small 50000] [--copy-sample N] [--jobs N]
                             [--name transfer]

Generated statements are written to a JSON Lines file; ``lrs import`` reads it into a fresh
store (every statement validated as the API does, stored in batches, rollups queued), and
``lrs export`` writes the store out again. Each runs as the real command in a process of
its own, whose peak RSS is read afterwards. The same run measures COPY of the same
statements into a bare table of the statements' shape (bench.run.copy_ceiling) before the
import and after the export, and takes the faster as the ceiling. It does all this twice,
at ``--small`` and at ``--statements``: flat memory means the same peak RSS at both sizes.
The rate between the two sizes is reported too: what a command sustains once it has
started. For a file too large to hold in memory, ``--copy-sample`` measures COPY on its
first N statements. Results go to bench/results/NAME.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
from tests.harness import create_database, drop_database

from bench.generate import Generator
from bench.run import copy_ceiling

RESULTS = Path(__file__).resolve().parent / "results"


def lrs(url: str, *args: str) -> tuple[float, float, float]:
    """Run ``lrs ARGS``; (seconds, peak RSS in MiB of that process, the largest peak RSS of
    the processes it started: an import's reading processes)."""
    env = {**os.environ, "LRS_DATABASE_URL": url}
    # The command, then its own peak RSS on standard error: VmHWM, which starts afresh at
    # exec (ru_maxrss would carry over this bench's own peak from the fork).
    script = (
        "import re, resource, sys; from lrs.cli import main; rc = main(sys.argv[1:]);"
        " status = open('/proc/self/status').read();"
        " print('maxrss', re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr);"
        " print('children', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr);"
        " sys.exit(rc)"
    )
    command = [sys.executable, "-c", script, *args]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    seconds = time.perf_counter() - started
    rss_kib = int(done.stderr.rsplit("maxrss", 1)[1].split()[0])
    children_kib = int(done.stderr.rsplit("children", 1)[1].split()[0])
    return seconds, round(rss_kib / 1024, 1), round(children_kib / 1024, 1)


def one_size(url: str, count: int, workdir: Path, copy_sample: int, jobs: list[str]) -> dict[str, Any]:
    source = workdir / f"statements-{count}.jsonl"
    with source.open("wb") as f:
        docs = []
        for n, s in enumerate(Generator(seed=count).statements(count)):
            line = orjson.dumps(s)
            if n < copy_sample:
                docs.append(line.decode())
            f.write(line + b"\n")
    # COPY before the import and again after the export: this machine's speed drifts by a
    # third within an hour, and the ratio is taken against the faster of the two.
    copies = [asyncio.run(copy_ceiling(url, docs))]
    store = f"transfer-{count}"
    subprocess.run(
        [sys.executable, "-m", "lrs", "store", "create", store],
        env={**os.environ, "LRS_DATABASE_URL": url},
        check=True,
        capture_output=True,
    )
    import_s, import_rss, reader_rss = lrs(url, "import", str(source), "--store", store, *jobs)
    out = workdir / f"export-{count}.jsonl"
    export_s, export_rss, _ = lrs(url, "export", "--store", store, "--output", str(out))
    exported = sum(1 for _ in out.open("rb"))
    assert exported == count, (exported, count)
    copies.append(asyncio.run(copy_ceiling(url, docs)))
    del docs
    copy = max(copies)
    size = source.stat().st_size
    source.unlink()
    out.unlink()
    return {
        "statements": count,
        "file_mib": round(size / 2**20, 1),
        "copy_statements": min(count, copy_sample),
        "copy_per_second": round(copy),
        "copy_per_second_before_after": [round(c) for c in copies],
        "import_seconds": round(import_s, 2),
        "import_per_second": round(count / import_s),
        "import_vs_copy": round(count / import_s / copy, 3),
        "import_peak_rss_mib": import_rss,
        "import_reader_peak_rss_mib": reader_rss,
        "export_seconds": round(export_s, 2),
        "export_per_second": round(count / export_s),
        "export_peak_rss_mib": export_rss,
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.transfer", description=__doc__)
    parser.add_argument("--statements", type=int, default=200_000)
    parser.add_argument("--small", type=int, default=50_000)
    parser.add_argument(
        "--copy-sample",
        type=int,
        default=10**9,
        help="measure COPY on the first N statements of each file (all of them by default;"
        " COPY is given them in memory)",
    )
    parser.add_argument("--name", default="transfer", help="results file name under bench/results")
    parser.add_argument("--jobs", type=int, help="lrs import --jobs (default: the command's own)")
    args = parser.parse_args()
    jobs = [] if args.jobs is None else ["--jobs", str(args.jobs)]
    os.environ.setdefault("LRS_TEST_DATABASE_URL", "postgresql://root@127.0.0.1:5432/root")
    url, admin = create_database()
    out: dict[str, Any] = {"command": " ".join(["python -m bench.transfer", *sys.argv[1:]])}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for count in (args.small, args.statements):
                out[str(count)] = one_size(url, count, Path(tmp), args.copy_sample, jobs)
                print(count, out[str(count)], flush=True)
    finally:
        drop_database(url, admin)
    small, big = (out[str(c)] for c in (args.small, args.statements))
    # Each command starts up (imports, migration check) in about a second and a half; the
    # rate between the two sizes is what the command sustains once running.
    added = big["statements"] - small["statements"]
    for step in ("import", "export"):
        out[f"{step}_sustained_per_second"] = round(
            added / (big[f"{step}_seconds"] - small[f"{step}_seconds"])
        )
    out["import_sustained_vs_copy"] = round(out["import_sustained_per_second"] / big["copy_per_second"], 3)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(out, indent=2) + "\n")
    rows = [
        "| measure | " + " | ".join(f"{s['statements']:,}" for s in (small, big)) + " |",
        "| --- | --- | --- |",
    ]
    for key in small:
        if key != "statements":
            rows.append(f"| {key} | " + " | ".join(str(s[key]) for s in (small, big)) + " |")
    sustained = [
        f"- {key}: {out[key]}" for key in ("import_sustained_per_second", "export_sustained_per_second")
    ]
    sustained.append(
        f"- import_sustained_vs_copy (COPY at the larger size): {out['import_sustained_vs_copy']}"
    )
    (RESULTS / f"{args.name}.md").write_text(
        f"# Export and import\n\nCommand: `{out['command']}` (2 cores shared by PostgreSQL and the"
        " command; the import validates every statement and queues it for the rollups).\n\n"
        + "\n".join(rows)
        + "\n\nBetween the two sizes (start-up left out):\n\n"
        + "\n".join(sustained)
        + "\n"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
