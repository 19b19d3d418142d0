"""The first hour of a new user: a regular (wheel) install, `lrs serve` on an empty home, the
embedded PostgreSQL stopping with it, and the CLI's help, defaults and refusals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from lrs.store.credentials import new_key
from tests.factories import unique
from tests.harness import ROOT, free_port, make_credential, run_cli


def test_a_built_wheel_installs_and_serves_on_an_empty_home(tmp_path: Path) -> None:
    """pip install of the wheel into a fresh venv, then `lrs serve` with no settings at all:
    it migrates (the migrations ship inside the package), answers, prints the first admin
    credential without noise, and its embedded PostgreSQL stops when it does."""
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(wheels), str(ROOT)],
        check=True,
        timeout=300,
    )
    [wheel] = wheels.glob("lrs-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], check=True, timeout=600)
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_") and k != "XDG_RUNTIME_DIR"}
    env.update(HOME=str(home), LRS_PORT=str(free_port()))
    env.pop("XDG_DATA_HOME", None)
    # Away from the source tree, so nothing can be found there by accident.
    serve = subprocess.Popen(
        [str(venv / "bin" / "lrs"), "serve"], cwd=tmp_path, env=env, stderr=subprocess.PIPE, text=True
    )
    lrs = [str(venv / "bin" / "lrs")]
    try:
        url = f"http://127.0.0.1:{env['LRS_PORT']}"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert serve.poll() is None, serve.stderr.read() if serve.stderr else ""
            try:
                if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("lrs serve did not become ready")
        status = subprocess.run(
            [*lrs, "embedded", "status"], env=env, capture_output=True, text=True, check=True
        )
        assert "running: pid" in status.stdout
    finally:
        serve.send_signal(signal.SIGINT)
        _, stderr = serve.communicate(timeout=60)
    assert "First run: an admin credential was created" in stderr
    for noise in ("RuntimeDirWarning", "XDG_RUNTIME_DIR", "DeprecationWarning", "license"):
        assert noise not in stderr, stderr
    # Ctrl-C on the last lrs process stops its embedded PostgreSQL.
    _embedded_stops(lrs, env)


def _embedded_stops(lrs: list[str], env: dict[str, str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = subprocess.run(
            [*lrs, "embedded", "status"], env=env, capture_output=True, text=True, check=True
        )
        if "not running" in status.stdout:
            break
        time.sleep(0.5)
    assert "not running" in status.stdout, status.stdout


def test_sigterm_stops_the_embedded_postgresql_too(tmp_path: Path) -> None:
    """A service manager or `docker stop` ends the server with SIGTERM, not Ctrl-C."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LRS_") and k != "XDG_RUNTIME_DIR"}
    env.update(HOME=str(tmp_path), LRS_PORT=str(free_port()))
    env.pop("XDG_DATA_HOME", None)
    lrs = [sys.executable, "-m", "lrs"]
    serve = subprocess.Popen([*lrs, "serve"], cwd=tmp_path, env=env, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert serve.poll() is None
            try:
                if (
                    httpx.get(f"http://127.0.0.1:{env['LRS_PORT']}/health/ready", timeout=2).status_code
                    == 200
                ):
                    break
            except httpx.HTTPError:
                time.sleep(0.3)
        else:
            raise AssertionError("lrs serve did not become ready")
    finally:
        serve.send_signal(signal.SIGTERM)
        assert serve.wait(timeout=60) == 128 + signal.SIGTERM
    _embedded_stops(lrs, env)


def test_generated_keys_never_start_like_an_option() -> None:
    keys = [new_key() for _ in range(5000)]
    assert not [k for k in keys if k.startswith("-")]
    assert len(set(keys)) == 5000


def test_version_and_help_show_defaults_and_scopes(server) -> None:
    version = run_cli(server.database_url, "--version").stdout
    assert version.startswith("lrs ")
    helped = run_cli(server.database_url, "credentials", "create", "--help").stdout
    assert "(default: default)" in helped  # --store
    for scope in ("statements/write", "statements/read/mine", "analytics/learners", "admin"):
        assert scope in helped
    settings_help = run_cli(server.database_url, "store", "settings", "--help").stdout
    assert "min_group_size" in settings_help and "rollups_in_transaction" in settings_help
    top = run_cli(server.database_url, "--help").stdout
    for command in ("serve", "embedded", "credentials", "store", "analytics"):
        assert command in top


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["credentials", "create"], ["--scopes"]),
        (["credentials", "create", "--scopes", "everything"], ["everything", "statements/write"]),
        (
            ["credentials", "create", "--scopes", "statements/read", "--expires", "2020-01-01T00:00:00Z"],
            ["expires", "passed"],
        ),
        (["credentials", "create", "--scopes", "statements/read", "--expires", "soon"], ["ISO 8601"]),
        (["store", "create", "min kommune"], ["store name"]),
        (["store", "create", "a/b"], ["store name"]),
        (["store", "settings", "default", "--set", "min_group_size=abc"], ["min_group_size", "integer"]),
        (["store", "settings", "default", "--set", "colour=blue"], ["colour", "not a store setting"]),
        (["store", "rename", "nowhere", "elsewhere"], ["nowhere"]),
    ],
)
def test_refusals_are_one_clear_line(server, args, words) -> None:
    out = run_cli(server.database_url, *args, check=False)
    assert out.returncode != 0
    last = out.stderr.strip().splitlines()[-1]
    for word in words:
        assert word in out.stderr, out.stderr
    assert "pydantic" not in out.stderr and "Traceback" not in out.stderr, out.stderr
    assert len(last) < 300


async def test_credentials_list_has_the_admin_apis_shape(server) -> None:
    store = f"shape-{unique()}"
    run_cli(server.database_url, "store", "create", store)
    key = make_credential(server.database_url, "statements/read,statements/write", store, "LMS").key
    run_cli(server.database_url, "credentials", "revoke", key)
    admin = make_credential(server.database_url, "admin")
    via_cli = json.loads(
        run_cli(server.database_url, "credentials", "list", "--store", store, "--json").stdout
    )
    async with httpx.AsyncClient(base_url=server.url, auth=admin.auth) as c:
        via_api = (await c.get(f"/admin/stores/{store}/credentials")).json()
    assert via_cli == via_api
    assert via_cli[0]["scopes"] == ["statements/read", "statements/write"]
    assert via_cli[0]["expires"] is None and via_cli[0]["revoked"]


async def test_metrics_can_be_kept_to_those_with_the_token(database_url) -> None:
    from tests.harness import running_server

    with running_server(database_url, metrics_token="s3cret-token-for-prometheus") as srv:
        async with httpx.AsyncClient(base_url=srv.url) as c:
            refused = await c.get("/metrics")
            assert refused.status_code == 401 and "Bearer" in refused.json()["message"]
            wrong = await c.get("/metrics", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
            ok = await c.get("/metrics", headers={"Authorization": "Bearer s3cret-token-for-prometheus"})
            assert ok.status_code == 200 and "lrs_http_requests_total" in ok.text
