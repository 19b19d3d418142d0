"""The ``lrs`` command end to end, against the test database."""

from __future__ import annotations

import json

import httpx

from tests.factories import unique
from tests.harness import run_cli


def test_store_and_credential_lifecycle(server):
    name = f"kommune-{unique()}"
    out = run_cli(server.database_url, "store", "create", name, "--json")
    assert json.loads(out.stdout)["name"] == name
    listing = run_cli(server.database_url, "store", "list").stdout
    assert name in listing and "default" in listing

    created = run_cli(
        server.database_url,
        "credentials",
        "create",
        "--store",
        name,
        "--scopes",
        "statements/write,statements/read",
        "--label",
        "LMS",
    )
    fields = dict(line.split(": ", 1) for line in created.stdout.splitlines() if ": " in line)
    key, secret = fields["key"], fields["secret"]
    assert fields["scopes"] == "statements/read, statements/write"

    headers = {"X-Experience-API-Version": "1.0.3"}
    r = httpx.get(server.xapi + "/statements", auth=(key, secret), headers=headers)
    assert r.status_code == 200

    rows = json.loads(run_cli(server.database_url, "credentials", "list", "--store", name, "--json").stdout)
    assert [(r["key"], r["label"], r["revoked"], r["scopes"]) for r in rows] == [
        (key, "LMS", None, ["statements/read", "statements/write"])
    ]
    assert secret not in run_cli(server.database_url, "credentials", "list", "--store", name).stdout

    run_cli(server.database_url, "credentials", "revoke", key)
    r = httpx.get(server.xapi + "/statements", auth=(key, secret), headers=headers)
    assert r.status_code == 401 and "revoked" in r.json()["message"]
    again = run_cli(server.database_url, "credentials", "revoke", key, check=False)
    assert again.returncode == 1


def test_unknown_scope_and_store_are_refused(server):
    bad = run_cli(server.database_url, "credentials", "create", "--scopes", "everything", check=False)
    assert bad.returncode == 2 and "everything" in bad.stderr
    missing = run_cli(
        server.database_url, "credentials", "create", "--store", "nowhere", "--scopes", "all", check=False
    )
    assert missing.returncode != 0 and "nowhere" in missing.stderr


def test_migrate_command(server):
    out = run_cli(server.database_url, "migrate")
    assert "newest schema" in out.stdout
