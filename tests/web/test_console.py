"""Staff sign-in, sessions, CSRF and role checks of the web app, in-process against a real SQLite database.

The route test walks ``app.routes``: every route that is not public must refuse an anonymous request, and every
route for other roles must refuse a signed-in member of staff, so a route added without a check fails here."""

from __future__ import annotations

import asyncio
import os
import re
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount

from voicebot.db import migrate
from voicebot.db.engine import make_engine
from voicebot.db.models import Role
from voicebot.db.repository import Repository
from voicebot.settings import HttpSettings, PathSettings, Settings
from voicebot.staff.accounts import hash_password
from voicebot.web.app import create_app
from voicebot.web.console import ACCESS, ADMINS, PUBLIC, unchecked_routes
from voicebot.web.staff_auth import SessionSecretError, SignInThrottle, load_secret

PASSWORD = "Rathaus-Musterstadt-2026"
# A request for each route that a public route must answer without sign-in (method, path, statuses accepted).
PUBLIC_PROBES = {
    "/": ("GET", "/", {307}),
    "/call": ("GET", "/call", {200}),
    "/api/offer": ("POST", "/api/offer", {400, 415}),  # reaches the offer's own checks: no sign-in asked
    "/static": ("GET", "/static/staff.css", {200}),
    "/healthz": ("GET", "/healthz", {200}),
    "/anmelden": ("GET", "/anmelden", {200}),
}


def make_settings(tmp_path: Path, **http: object) -> Settings:
    return Settings(
        paths=PathSettings(
            database_file=tmp_path / "voicebot.db", session_secret_file=tmp_path / "session-secret"
        ),
        http=HttpSettings(**http),  # type: ignore[arg-type]
    )


def add_users(settings: Settings) -> None:
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        migrate.upgrade(engine)
        repository = Repository(engine)
        repository.add_staff_user("anna", hash_password(PASSWORD), Role.STAFF, display_name="Anna Beispiel")
        repository.add_staff_user("lea", hash_password(PASSWORD), Role.SUPERVISOR, display_name="Lea Leitung")
        repository.add_staff_user("otto", hash_password(PASSWORD), Role.ADMIN, display_name="Otto Admin")
    finally:
        engine.dispose()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = make_settings(tmp_path)
    add_users(settings)
    return settings


@pytest.fixture
async def client(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        yield client


def csrf_of(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


async def sign_in(client: httpx.AsyncClient, username: str, password: str = PASSWORD) -> httpx.Response:
    form = await client.get("/anmelden")
    return await client.post(
        "/anmelden", data={"csrf": csrf_of(form.text), "benutzername": username, "passwort": password}
    )


def route_requests(app_routes: list[object]) -> list[tuple[str, str, str]]:
    """(access key, method, path) for every route of the app; a mount is tried at a file inside it."""
    found = []
    for route in app_routes:
        if isinstance(route, APIRoute) or hasattr(route, "methods"):
            for method in sorted(getattr(route, "methods", None) or {"GET"}):
                if method != "HEAD":
                    found.append((route.path, method, route.path))  # type: ignore[attr-defined]
        elif isinstance(route, Mount):
            found.append((route.path, "GET", f"{route.path}/staff.css"))
    return found


async def test_every_route_refuses_anonymous_and_wrong_role_requests(settings: Settings) -> None:
    app = create_app(settings, None)
    assert unchecked_routes(app) == []
    requests = route_requests(list(app.routes))
    assert {key for key, _method, _path in requests} >= set(PUBLIC_PROBES) | {
        "/konsole",
        "/konsole/team",
        "/konsole/telefon",
        "/konsole/kennzahlen",
        "/konsole/kennzahlen.csv",
        "/konsole/anrufe",
        "/konsole/anrufe/{call_id}",
        "/konsole/uebersicht",
        "/konsole/uebersicht.csv",
        "/konsole/luecken",
    }
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as anonymous:
        for key, method, path in requests:
            response = await anonymous.request(method, path)
            if ACCESS[key] == PUBLIC:
                if key in PUBLIC_PROBES and PUBLIC_PROBES[key][0] == method:
                    assert response.status_code in PUBLIC_PROBES[key][2], (method, path, response.status_code)
                continue
            refused = response.status_code == 401 or (
                response.status_code == 303 and response.headers["location"] == "/anmelden"
            )
            assert refused, f"{method} {path} answered {response.status_code} without sign-in"
    async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as staff:
        assert (await sign_in(staff, "anna")).status_code == 303
        for key, method, path in requests:
            allowed = ACCESS[key]
            if allowed == PUBLIC or Role.STAFF.value in allowed:
                continue
            response = await staff.request(method, path)
            assert response.status_code == 403, f"{method} {path} answered {response.status_code} to staff"
            assert "Kein Zugriff" in response.text
    async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as supervisor:
        assert (await sign_in(supervisor, "lea")).status_code == 303
        team = await supervisor.get("/konsole/team")
        assert team.status_code == 200 and "Anna Beispiel" in team.text
        admin_only = [(key, method, path) for key, method, path in requests if ACCESS[key] == ADMINS]
        assert {key for key, _method, _path in admin_only} >= {"/konsole/team/mitglied"}
        for _key, method, path in admin_only:
            response = await supervisor.request(method, path)
            assert response.status_code == 403, (
                f"{method} {path} answered {response.status_code} to a supervisor"
            )
    async with httpx.AsyncClient(transport=transport, base_url="http://voicebot") as admin:
        assert (await sign_in(admin, "otto")).status_code == 303
        for key, method, path in requests:
            if ACCESS[key] != PUBLIC and method == "GET" and "{" not in path:
                response = await admin.request(method, path)
                assert response.status_code != 403, f"{method} {path} refused an administrator"


async def test_sign_in_sets_a_strict_http_only_session_cookie(client: httpx.AsyncClient) -> None:
    form = await client.get("/anmelden")
    assert 'for="benutzername"' in form.text and 'for="passwort"' in form.text and 'lang="de"' in form.text
    signed_in = await client.post(
        "/anmelden", data={"csrf": csrf_of(form.text), "benutzername": "anna", "passwort": PASSWORD}
    )
    assert signed_in.status_code == 303 and signed_in.headers["location"] == "/konsole"
    cookie = next(c for c in signed_in.headers.get_list("set-cookie") if c.startswith("vb_sitzung="))
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie, cookie
    page = await client.get("/konsole")
    assert page.status_code == 200 and "Anna Beispiel" in page.text and "Mitarbeiter/in" in page.text
    assert (await client.get("/anmelden")).status_code == 303  # signed in: straight to the console


@pytest.mark.parametrize(("mode", "base_url", "secure"), [
    ("auto", "https://voicebot", True), ("auto", "http://voicebot", False), ("always", "http://voicebot", True),
    ("never", "https://voicebot", False),
])  # fmt: skip
async def test_the_cookie_is_secure_over_https_or_when_set(
    tmp_path: Path, mode: str, base_url: str, secure: bool
) -> None:
    settings = make_settings(tmp_path, secure_cookies=mode)
    add_users(settings)
    app = create_app(settings, None)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client:
        form = await client.get("/anmelden")
        form_cookie = next(c for c in form.headers.get_list("set-cookie") if c.startswith("vb_csrf="))
        assert ("; Secure" in form_cookie) == secure, form_cookie
        if secure and base_url.startswith("http:"):
            return  # a Secure cookie is not sent back over http: the sign-in needs https then
        response = await client.post(
            "/anmelden",
            data={"csrf": csrf_of(form.text), "benutzername": "anna", "passwort": PASSWORD},
        )
    session = next(c for c in response.headers.get_list("set-cookie") if c.startswith("vb_sitzung="))
    assert ("; Secure" in session) == secure, session


async def test_wrong_password_and_unknown_user_get_the_same_announced_error(
    client: httpx.AsyncClient,
) -> None:
    wrong = await sign_in(client, "anna", "falsches-passwort-1")
    unknown = await sign_in(client, "niemand", PASSWORD)
    for response in (wrong, unknown):
        assert response.status_code == 401
        assert 'role="alert"' in response.text and "Benutzername oder Passwort ist falsch." in response.text
        assert 'aria-invalid="true"' in response.text
        assert not any(c.startswith("vb_sitzung=") for c in response.headers.get_list("set-cookie"))
    assert (await client.get("/konsole")).status_code == 303


async def test_every_post_needs_its_csrf_token(client: httpx.AsyncClient, settings: Settings) -> None:
    # Sign-in without the form's token (a form posted from elsewhere): refused.
    no_token = await client.post("/anmelden", data={"benutzername": "anna", "passwort": PASSWORD})
    assert no_token.status_code == 400 and "abgelaufen" in no_token.text
    assert (await sign_in(client, "anna")).status_code == 303
    page = await client.get("/konsole")
    token = csrf_of(page.text)
    for data in ({"verfuegbarkeit": "available"}, {"verfuegbarkeit": "available", "csrf": "x" + token[1:]}):
        refused = await client.post("/konsole/verfuegbarkeit", data=data)
        assert refused.status_code == 403, refused.text
    assert (await client.post("/abmelden", data={"csrf": "falsch"})).status_code == 403
    engine = make_engine(f"sqlite:///{settings.paths.database_file}")
    try:
        assert Repository(engine).staff_user("anna").availability == "away"  # type: ignore[union-attr]
        saved = await client.post(
            "/konsole/verfuegbarkeit", data={"verfuegbarkeit": "available", "csrf": token}
        )
        assert saved.status_code == 303
        assert Repository(engine).staff_user("anna").availability == "available"  # type: ignore[union-attr]
    finally:
        engine.dispose()
    shown = await client.get(saved.headers["location"])
    assert "Gespeichert: Verfügbar." in shown.text and 'value="available" checked' in shown.text
    bad = await client.post("/konsole/verfuegbarkeit", data={"verfuegbarkeit": "urlaub", "csrf": token})
    assert bad.status_code == 400
    as_json = await client.post("/konsole/verfuegbarkeit", json={"verfuegbarkeit": "busy", "csrf": token})
    assert as_json.status_code == 415


async def test_sign_out_ends_the_session(client: httpx.AsyncClient) -> None:
    assert (await sign_in(client, "anna")).status_code == 303
    session = client.cookies["vb_sitzung"]
    token = csrf_of((await client.get("/konsole")).text)
    out = await client.post("/abmelden", data={"csrf": token})
    assert out.status_code == 303 and out.headers["location"] == "/anmelden"
    assert "vb_sitzung" not in client.cookies
    client.cookies.set("vb_sitzung", session)  # the old cookie, replayed
    assert (await client.get("/konsole")).status_code == 303


async def test_a_forged_or_foreign_session_cookie_is_refused(
    client: httpx.AsyncClient, tmp_path: Path
) -> None:
    other = make_settings(tmp_path / "other")
    other.paths.database_file.parent.mkdir()
    add_users(other)
    foreign_app = create_app(other, None)  # another key
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=foreign_app), base_url="http://x"
    ) as foreign:
        assert (await sign_in(foreign, "anna")).status_code == 303
        foreign_cookie = foreign.cookies["vb_sitzung"]
    for cookie in (foreign_cookie, "abc.def", "x" * 600, foreign_cookie.split(".")[0] + ".AAAA"):
        client.cookies.set("vb_sitzung", cookie)
        assert (await client.get("/konsole")).status_code == 303, cookie


def test_the_session_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    key = load_secret(settings)
    path = settings.paths.session_secret_file
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(key) >= 32
    assert load_secret(settings) == key  # kept across starts
    os.chmod(path, 0o644)
    with pytest.raises(SessionSecretError, match="chmod 600"):
        load_secret(settings)
    configured = make_settings(tmp_path, session_secret="k" * 40)
    assert load_secret(configured) == b"k" * 40
    with pytest.raises(SessionSecretError, match="at least 32"):
        load_secret(make_settings(tmp_path, session_secret="kurz"))


def test_serve_stops_with_one_line_when_the_session_key_is_readable_by_others(tmp_path: Path) -> None:
    import subprocess
    import sys

    key = tmp_path / "session-secret"
    key.write_text("k" * 64)
    os.chmod(key, 0o644)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
        "VOICEBOT_PATHS__SESSION_SECRET_FILE": str(key),
        "VOICEBOT_CONFIG": str(tmp_path / "none.toml"),
    }
    result = subprocess.run(
        [sys.executable, "-m", "voicebot.cli", "serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the session key") and "chmod 600" in last, result.stderr


async def test_repeated_wrong_passwords_lock_sign_in_for_a_while(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, sign_in_max_failures=3, sign_in_lockout_s=3.0)
    add_users(settings)
    app = create_app(settings, None)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://voicebot"
    ) as client:
        statuses = [(await sign_in(client, "anna", "falsches-passwort-1")).status_code for _ in range(3)]
        locked = await sign_in(client, "anna")  # the right password, but locked now
        assert statuses == [401, 401, 401] and locked.status_code == 429
        assert 'role="alert"' in locked.text and "Zu viele falsche Anmeldeversuche" in locked.text
        other = await sign_in(client, "lea")  # the same address: locked too
        assert other.status_code == 429
        await asyncio.sleep(3.1)
        assert (await sign_in(client, "anna")).status_code == 303


def test_the_throttle_forgets_the_oldest_keys_beyond_its_bound() -> None:
    throttle = SignInThrottle(max_failures=1, lockout_s=60, max_keys=3)
    for name in ("a", "b", "c", "d"):
        throttle.failed(name)
    assert not throttle.locked("a") and throttle.locked("d") and throttle.locked("b")
