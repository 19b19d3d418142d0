"""Where a filled store's slow reads spend their time: ``EXPLAIN (ANALYZE, BUFFERS)`` of the
statement query by agent (for learners bench.run's queries do not ask about, so their pages
are as cold as the store's) and of reading one course's progress rows, with I/O timing on.

    python -m bench.explain DSN [--store default]

Run it against a benchmark's database while that still exists (bench.run drops it at its
end; its analytics phase is a window of a few minutes).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import asyncpg

from bench.generate import Generator
from lrs.store.keys import analytics_key, index_key
from lrs.xapi.agents import ifi_key

# As store.statements.query writes it for agent=..., the default page (100, and one more).
AGENT = """EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
SELECT s.seq, s.stored, s.statement::text AS doc FROM statement_index f
  JOIN statements s ON s.store_id = f.store_id AND s.seq = f.seq
 WHERE s.store_id = $1 AND NOT s.voided AND f.store_id = $1 AND f.key = CAST($2 AS uuid)
       AND NOT f.related
 ORDER BY f.seq DESC LIMIT 101"""

PROGRESS = """EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON)
SELECT count(*), count(completed_at), avg(duration_seconds) FROM analytics_progress
 WHERE store_id = $1 AND activity_key = $2"""

# bench.run asks about learners 0, 97, 194, ... and courses 0 to 99.
LEARNERS = (5, 1001, 7003, 12345, 19999)
COURSES = (7, 42)


def _nodes(node: dict[str, Any], depth: int = 0) -> list[str]:
    line = (
        f"{'  ' * depth}{node['Node Type']} {node.get('Index Name') or node.get('Relation Name') or ''}:"
        f" rows {node.get('Actual Rows')}, {node.get('Actual Total Time')} ms,"
        f" blocks hit {node.get('Shared Hit Blocks')}, read {node.get('Shared Read Blocks')},"
        f" I/O {node.get('I/O Read Time', node.get('Shared I/O Read Time'))} ms"
    )
    return [line] + [n for child in node.get("Plans", []) for n in _nodes(child, depth + 1)]


async def main(dsn: str, store_name: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET track_io_timing = on")
        store = await conn.fetchval("SELECT id FROM stores WHERE name = $1", store_name)
        g = Generator()
        asked: list[tuple[str, str, Any]] = [
            (f"agent {n}", AGENT, index_key("agent", ifi_key(g.learner(n)) or "")) for n in LEARNERS
        ]
        asked += [(f"course {c}", PROGRESS, analytics_key(g.course(c))) for c in COURSES]
        for name, sql, key in asked:
            plan = json.loads(await conn.fetchval(sql, store, key))[0]
            print(f"{name}: {plan['Execution Time']} ms")
            print("\n".join(_nodes(plan["Plan"], 1)))
    finally:
        await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.explain", description=__doc__)
    parser.add_argument("dsn")
    parser.add_argument("--store", default="default")
    args = parser.parse_args()
    asyncio.run(main(args.dsn, args.store))
