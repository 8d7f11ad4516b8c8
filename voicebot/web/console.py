"""The staff side of the web app: sign-in (/anmelden), sign-out (/abmelden), the console (/konsole) with the
availability switch, and the team overview for supervisors (/konsole/team). German, server-rendered, no script:
every form works with the keyboard alone and is announced by screen readers.

Access is declared once per route (:data:`ACCESS`); :func:`install_console` refuses a route it has no entry for, and
the test enumerates ``app.routes`` against it, so a route cannot be added without a decision on who may use it.
"""

from __future__ import annotations

import html
import string
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from sqlalchemy import Engine

from voicebot.db.models import Availability, Role, StaffUser
from voicebot.db.repository import Repository
from voicebot.records import CallRecordStore
from voicebot.settings import Settings
from voicebot.staff.accounts import DUMMY_HASH, MAX_PASSWORD_LENGTH, verify_password
from voicebot.staff.phones import MAX_PHONE_URI_CHARS, StaffSettingError, check_groups, check_phone_uri
from voicebot.web.staff_auth import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    SessionSigner,
    SessionToken,
    SignInThrottle,
    form_token_ok,
    load_secret,
    new_form_token,
)

if TYPE_CHECKING:
    from voicebot.web.browser_accept import BrowserAccept
    from voicebot.web.staff_queue import QueueView

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"
PUBLIC = "public"
STAFF_ROLES = frozenset(role.value for role in Role)  # everyone with an account
SUPERVISORS = frozenset({Role.SUPERVISOR.value, Role.ADMIN.value})
ADMINS = frozenset({Role.ADMIN.value})
# Who may use each route: PUBLIC, or the roles allowed (anonymous → sign-in/401, another role → 403).
ACCESS: dict[str, str | frozenset[str]] = {
    "/": PUBLIC,  # redirects to /call
    "/call": PUBLIC,  # the citizen's page
    "/api/offer": PUBLIC,  # its WebRTC offer (and trickled ICE candidates)
    "/static": PUBLIC,  # the pages' own CSS and scripts
    "/healthz": PUBLIC,  # alive (load balancers, ServeProcess)
    "/readyz": PUBLIC,  # ready for calls (voicebot/web/operating.py)
    "/metrics": PUBLIC,  # no sign-in: limited to http.metrics_networks in the route (decision 0900)
    # API description, only where a developer switched it on (http.api_docs)
    "/openapi.json": PUBLIC,
    "/docs": PUBLIC,
    "/docs/oauth2-redirect": PUBLIC,
    "/anmelden": PUBLIC,
    "/abmelden": STAFF_ROLES,
    "/konsole": STAFF_ROLES,
    "/konsole/verfuegbarkeit": STAFF_ROLES,
    "/konsole/telefon": STAFF_ROLES,  # one's own phone address ("Mein Telefon")
    "/konsole/team": SUPERVISORS,
    "/konsole/team/mitglied": ADMINS,  # a member's phone address and groups
    # Service figures per group and day, as a page and as CSV (voicebot/web/staff_figures.py)
    "/konsole/kennzahlen": SUPERVISORS,
    "/konsole/kennzahlen.csv": SUPERVISORS,
    # Transcript review: the call list with filters and full-text search, one call's timeline (staff_review.py)
    "/konsole/anrufe": SUPERVISORS,
    "/konsole/anrufe/{call_id}": SUPERVISORS,
    # The call's audio where the caller consented to recording; every playback is logged (decision 0970)
    "/konsole/anrufe/{call_id}/aufnahme": SUPERVISORS,
    "/konsole/anrufe/{call_id}/markieren": SUPERVISORS,  # flag / unflag a call (filter "markiert")
    # The dashboard (charts, tables, CSV per table) and the knowledge-gap report (staff_dashboard.py)
    "/konsole/uebersicht": SUPERVISORS,
    "/konsole/uebersicht.csv": SUPERVISORS,
    "/konsole/luecken": SUPERVISORS,
    # Corrections of bot answers: a draft from a turn, a second person decides, revert (staff_corrections.py)
    "/konsole/anrufe/{call_id}/korrektur": SUPERVISORS,
    "/konsole/korrekturen": SUPERVISORS,
    "/konsole/korrekturen/entscheiden": SUPERVISORS,
    "/konsole/korrekturen/zuruecknehmen": SUPERVISORS,
    # The live queue, accepting a caller, the call in progress and its wrap-up (voicebot/web/staff_queue.py)
    "/konsole/warteschlange": STAFF_ROLES,
    "/konsole/annehmen": STAFF_ROLES,
    "/konsole/gespraech/{entry_id}": STAFF_ROLES,
    "/konsole/gespraech/{entry_id}/status": STAFF_ROLES,
    "/konsole/abschluss": STAFF_ROLES,
    "/konsole/rueckrufe": STAFF_ROLES,
    "/konsole/rueckrufe/uebernehmen": STAFF_ROLES,
    "/konsole/rueckrufe/ergebnis": STAFF_ROLES,
    "/konsole/anruf/{key}": STAFF_ROLES,  # a call's summary: the link a PBX hand-off carries, search results
    "/konsole/suche": STAFF_ROLES,
    # Taking a waiting caller in the browser (WebRTC audio) and hanging up (voicebot/web/browser_accept.py)
    "/konsole/im-browser": STAFF_ROLES,
    "/konsole/im-browser/auflegen": STAFF_ROLES,
    "/konsole/im-browser/status": STAFF_ROLES,
    # Data protection: a caller's data by number (search, export, delete) and the audit log (staff_privacy.py)
    "/konsole/datenschutz": ADMINS,
    "/konsole/datenschutz/export": ADMINS,
    "/konsole/datenschutz/loeschen": ADMINS,
    "/konsole/protokoll": ADMINS,
}
# Routes a script polls: without a session they answer 401 (JSON), not a redirect to the sign-in page.
JSON_ROUTES = ("/konsole/warteschlange", "/status")
AVAILABILITY_LABELS = {
    Availability.AVAILABLE.value: "Verfügbar",
    Availability.BUSY.value: "Im Gespräch / beschäftigt",
    Availability.AWAY.value: "Abwesend",
}
ROLE_LABELS = {"staff": "Mitarbeiter/in", "supervisor": "Teamleitung", "admin": "Administration"}
MAX_FORM_BYTES = 4096


class NotSignedIn(Exception):
    """No valid session: pages redirect to the sign-in, other requests get 401."""


class WrongRole(Exception):
    """Signed in, but the route is for other roles: 403."""


class Console:
    """What the staff routes share: the signer, the database and the pages."""

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self.settings = settings
        self.signer = SessionSigner(load_secret(settings), settings.http.session_max_age_s)
        self.throttle = SignInThrottle(settings.http.sign_in_max_failures, settings.http.sign_in_lockout_s)
        self._engine = engine
        self._repository: Repository | None = None
        self._records: CallRecordStore | None = None
        self.queue_view: QueueView | None = None  # set by install_staff_queue
        self.browser_accept: BrowserAccept | None = None  # set by install_browser_accept

    @property
    def engine(self) -> Engine:
        """The database (made on first use: citizen-only tests need none)."""
        if self._engine is None:
            from voicebot.db.engine import engine_from_settings

            self._engine = engine_from_settings(self.settings)
        return self._engine

    @property
    def repository(self) -> Repository:
        if self._repository is None:
            self._repository = Repository(self.engine)
        return self._repository

    @property
    def records(self) -> CallRecordStore:
        """Where the call records are read: the serving process's own store when it has one (it also knows
        the changes its writer has not written yet), else a reader over the console's database."""
        if self._records is None:
            from voicebot.db.store import SqlCallRecordStore

            self._records = SqlCallRecordStore(self.engine, fallback_dir=self.settings.paths.calls_dir)
        return self._records

    def audit_view(self, user: StaffUser, call_id: str) -> None:
        """Who opened which call's transcript (before the page shows it)."""
        from voicebot.privacy.data import audit

        audit(self.engine, f"console:{user.username}", "view_transcript", call_id)

    def use_records(self, store: CallRecordStore | None) -> None:
        if store is not None:
            self._records = store

    def secure(self, request: Request) -> bool:
        mode = self.settings.http.secure_cookies
        return mode == "always" or (mode == "auto" and request.url.scheme == "https")

    def signed_in(self, request: Request) -> tuple[StaffUser, SessionToken] | None:
        session = self.signer.read(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        user = self.repository.staff_user_by_id(session.user_id)
        if (
            user is None
            or user.disabled
            or self.signer.fingerprint(user.password_hash) != session.password_fingerprint
        ):
            return None
        return user, session

    def require(self, request: Request, path: str) -> tuple[StaffUser, SessionToken]:
        found = self.signed_in(request)
        if found is None:
            raise NotSignedIn()
        allowed = ACCESS[path]
        if allowed != PUBLIC and found[0].role not in allowed:
            raise WrongRole()
        return found


async def read_form(request: Request, max_bytes: int = MAX_FORM_BYTES) -> dict[str, str]:
    """A small urlencoded form (the first value of each field); anything else is refused with 400/415."""
    fields = await read_form_lists(request, max_bytes)
    return {name: values[0] for name, values in fields.items()}


async def read_form_lists(
    request: Request, max_bytes: int = MAX_FORM_BYTES, max_fields: int = 10
) -> dict[str, list[str]]:
    """A small urlencoded form with every value of each field (checkboxes of one name)."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/x-www-form-urlencoded":
        raise _FormError(415, "Formulardaten erwartet.")
    body = await request.body()
    if len(body) > max_bytes:
        raise _FormError(413, "Formular zu groß.")
    try:
        return parse_qs(body.decode("utf-8"), keep_blank_values=True, max_num_fields=max_fields)
    except (UnicodeDecodeError, ValueError):
        raise _FormError(400, "Ungültige Formulardaten.") from None


class _FormError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _page(title: str, body: str) -> str:
    template = string.Template((TEMPLATES_DIR / "staff.html").read_text(encoding="utf-8"))
    return template.substitute(title=html.escape(title), body=body)


def _message_page(title: str, text: str, status: int) -> HTMLResponse:
    body = f'<h1>{html.escape(title)}</h1>\n<p role="alert">{html.escape(text)}</p>\n<p><a href="/konsole">Zur Konsole</a></p>'
    return HTMLResponse(_page(title, body), status_code=status)


def install_console(app: FastAPI, settings: Settings, engine: Engine | None = None) -> Console:
    console = Console(settings, engine)
    app.state.console = console
    # The serving process's record store (set by create_app before this): it also has what is not written yet.
    console.use_records(getattr(getattr(app.state, "resources", None), "records", None))

    @app.exception_handler(NotSignedIn)
    async def not_signed_in(request: Request, _error: NotSignedIn) -> Response:
        if request.url.path.endswith(JSON_ROUTES):
            return JSONResponse({"detail": "Nicht angemeldet."}, status_code=401)
        if request.method == "GET":
            return RedirectResponse("/anmelden", status_code=303)
        return _message_page("Nicht angemeldet", "Bitte melden Sie sich zuerst an.", 401)

    @app.exception_handler(WrongRole)
    async def wrong_role(_request: Request, _error: WrongRole) -> Response:
        return _message_page("Kein Zugriff", "Diese Seite ist für Ihre Rolle nicht freigegeben.", 403)

    @app.exception_handler(_FormError)
    async def form_error(_request: Request, error: _FormError) -> Response:
        return _message_page("Ungültige Anfrage", error.message, error.status)

    def sign_in_page(request: Request, *, error: str = "", username: str = "", status: int = 200) -> Response:
        token = new_form_token()
        error_html = (
            f'<div id="fehler" class="error" role="alert"><p>{html.escape(error)}</p></div>' if error else ""
        )
        described = ' aria-describedby="fehler" aria-invalid="true"' if error else ""
        body = f"""<h1>Anmeldung für Mitarbeitende</h1>
{error_html}
<form method="post" action="/anmelden">
  <input type="hidden" name="csrf" value="{token}">
  <p><label for="benutzername">Benutzername</label>
     <input id="benutzername" name="benutzername" type="text" autocomplete="username" required
            autocapitalize="none" spellcheck="false" maxlength="64" value="{html.escape(username)}"{described}></p>
  <p><label for="passwort">Passwort</label>
     <input id="passwort" name="passwort" type="password" autocomplete="current-password" required
            maxlength="{MAX_PASSWORD_LENGTH}"{described}></p>
  <p><button type="submit">Anmelden</button></p>
</form>"""
        response = HTMLResponse(_page("Anmelden – Konsole", body), status_code=status)
        response.set_cookie(
            CSRF_COOKIE,
            token,
            httponly=True,
            samesite="strict",
            secure=console.secure(request),
            path="/anmelden",
        )
        return response

    @app.get("/anmelden", include_in_schema=False)
    async def sign_in_form(request: Request) -> Response:
        if console.signed_in(request) is not None:
            return RedirectResponse("/konsole", status_code=303)
        return sign_in_page(request)

    @app.post("/anmelden", include_in_schema=False)
    async def sign_in(request: Request) -> Response:
        form = await read_form(request)
        if not form_token_ok(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
            return sign_in_page(
                request,
                error="Das Formular war abgelaufen. Bitte melden Sie sich noch einmal an.",
                status=400,
            )
        username = form.get("benutzername", "").strip()[:64]
        password = form.get("passwort", "")
        keys = (f"name:{username.casefold()}", f"source:{request.client.host if request.client else '-'}")
        if console.throttle.locked(*keys):
            minutes = max(1, round(console.throttle.lockout_s / 60))
            return sign_in_page(
                request,
                error=f"Zu viele falsche Anmeldeversuche. Bitte versuchen Sie es in {minutes} Minuten noch einmal.",
                username=username,
                status=429,
            )
        user = console.repository.staff_user(username) if username else None
        matches, renew = verify_password(user.password_hash if user else DUMMY_HASH, password)
        if user is None or user.disabled or not matches:
            console.throttle.failed(*keys)
            return sign_in_page(
                request,
                error="Benutzername oder Passwort ist falsch.",
                username=username,
                status=401,
            )
        console.throttle.succeeded(keys[0])
        if renew:
            from voicebot.staff.accounts import hash_password

            console.repository.set_password_hash(user.id, hash_password(password))
            user = console.repository.staff_user(username) or user
        response = RedirectResponse("/konsole", status_code=303)
        response.set_cookie(
            SESSION_COOKIE,
            console.signer.issue(user.id, user.password_hash),
            max_age=console.signer.max_age_s,
            httponly=True,
            samesite="strict",
            secure=console.secure(request),
            path="/",
        )
        response.delete_cookie(CSRF_COOKIE, path="/anmelden")
        return response

    async def checked_post(
        request: Request, path: str, max_bytes: int = MAX_FORM_BYTES
    ) -> tuple[StaffUser, SessionToken, dict[str, str]]:
        user, session = console.require(request, path)
        form = await read_form(request, max_bytes)
        if not console.signer.csrf_ok(session, form.get("csrf")):
            raise _FormError(403, "Das Formular ist ungültig oder abgelaufen. Bitte laden Sie die Seite neu.")
        return user, session, form

    @app.post("/abmelden", include_in_schema=False)
    async def sign_out(request: Request) -> Response:
        _user, session, _form = await checked_post(request, "/abmelden")
        console.signer.end(session)
        response = RedirectResponse("/anmelden", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
        return response

    async def checked_post_lists(
        request: Request, path: str, max_fields: int
    ) -> tuple[StaffUser, SessionToken, dict[str, list[str]]]:
        user, session = console.require(request, path)
        form = await read_form_lists(request, MAX_FORM_BYTES, max_fields)
        if not console.signer.csrf_ok(session, (form.get("csrf") or [""])[0]):
            raise _FormError(403, "Das Formular ist ungültig oder abgelaufen. Bitte laden Sie die Seite neu.")
        return user, session, form

    def phone_section(user: StaffUser, csrf: str, error: str = "", entered: str | None = None) -> str:
        """'Mein Telefon': where the bot rings this member of staff when they accept a caller."""
        value = user.phone_uri if entered is None else entered
        state = (
            f'Eingetragen: <strong id="mein-telefon">{html.escape(user.phone_uri)}</strong>'
            if user.phone_uri
            else "Noch keine Telefonadresse eingetragen: Anrufe annehmen können Sie erst mit einer."
        )
        error_html = (
            f'<div id="telefon-fehler" class="error" role="alert"><p>{html.escape(error)}</p></div>'
            if error
            else ""
        )
        described = "telefon-hilfe telefon-fehler" if error else "telefon-hilfe"
        invalid = ' aria-invalid="true"' if error else ""
        return f"""<section aria-labelledby="telefon-titel">
  <h2 id="telefon-titel">Mein Telefon</h2>
  <p>{state}</p>
  {error_html}
  <form method="post" action="/konsole/telefon">
    <input type="hidden" name="csrf" value="{csrf}">
    <p><label for="telefon">Adresse Ihres Telefons (SIP-URI)</label>
       <input id="telefon" name="telefon" type="text" autocomplete="off" autocapitalize="none" spellcheck="false"
              maxlength="{MAX_PHONE_URI_CHARS}" value="{html.escape(value)}" aria-describedby="{described}"{invalid}>
       <span id="telefon-hilfe" class="hilfe">Zum Beispiel sip:201@pbx.musterstadt.de oder tel:+49301234567.
       Leer speichern entfernt die Adresse.</span></p>
    <p><button type="submit">Telefon speichern</button></p>
  </form>
</section>"""

    def console_page(
        user: StaffUser,
        session: SessionToken,
        notice: str = "",
        *,
        phone_error: str = "",
        phone_entered: str | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        from voicebot.web.staff_queue import search_form

        csrf = console.signer.csrf_token(session)
        options = "\n".join(
            f'    <p class="option"><input type="radio" id="v-{value}" name="verfuegbarkeit" value="{value}"'
            f'{" checked" if user.availability == value else ""}> <label for="v-{value}">{label}</label></p>'
            for value, label in AVAILABILITY_LABELS.items()
        )
        notice_html = (
            f'<p id="hinweis" role="status">{html.escape(notice)}</p>'
            if notice
            else '<p id="hinweis" role="status"></p>'
        )
        name = user.display_name or user.username
        team = (
            """<nav aria-label="Leitung">
  <ul>
    <li><a href="/konsole/team">Team-Übersicht</a></li>
    <li><a href="/konsole/kennzahlen">Servicekennzahlen</a></li>
    <li><a href="/konsole/anrufe">Anrufe prüfen</a></li>
    <li><a href="/konsole/uebersicht">Übersicht</a></li>
    <li><a href="/konsole/luecken">Wissenslücken</a></li>
    <li><a href="/konsole/korrekturen">Korrekturen</a></li>
  </ul>
</nav>"""
            if user.role in SUPERVISORS
            else ""
        )
        if user.role in ADMINS:
            team += """
<nav aria-label="Datenschutz">
  <ul>
    <li><a href="/konsole/datenschutz">Datenschutz: Auskunft und Löschung</a></li>
    <li><a href="/konsole/protokoll">Datenschutz-Protokoll</a></li>
  </ul>
</nav>"""
        body = f"""<h1>Konsole</h1>
<p>Angemeldet als <strong id="angemeldet">{html.escape(name)}</strong>
   ({html.escape(ROLE_LABELS.get(user.role, user.role))}).</p>
{notice_html}
<form method="post" action="/konsole/verfuegbarkeit">
  <input type="hidden" name="csrf" value="{csrf}">
  <fieldset>
    <legend>Ihre Verfügbarkeit: {html.escape(AVAILABILITY_LABELS.get(user.availability, user.availability))}</legend>
{options}
  </fieldset>
  <p><button type="submit">Verfügbarkeit speichern</button></p>
</form>
{phone_section(user, csrf, phone_error, phone_entered)}
{queue_view.section(user, csrf)}
{queue_view.open_wrap_ups(user)}
{search_form()}
{queue_view.callbacks_link(user)}
{team}
<form method="post" action="/abmelden">
  <input type="hidden" name="csrf" value="{csrf}">
  <p><button type="submit" class="secondary">Abmelden</button></p>
</form>"""
        return HTMLResponse(
            _page(f"Konsole – {name}", body), status_code=status, headers={"Cache-Control": "no-store"}
        )

    @app.get("/konsole", include_in_schema=False)
    async def console_home(request: Request) -> Response:
        user, session = console.require(request, "/konsole")
        from voicebot.web.staff_queue import NOTICES

        saved = request.query_params.get("gespeichert")
        notice = NOTICES.get(request.query_params.get("hinweis", ""), "")
        if saved in AVAILABILITY_LABELS:
            notice = f"Gespeichert: {AVAILABILITY_LABELS[saved]}."
        elif saved == "telefon":
            notice = "Gespeichert: Ihre Telefonadresse." if user.phone_uri else "Telefonadresse entfernt."
        return console_page(user, session, notice)

    @app.post("/konsole/verfuegbarkeit", include_in_schema=False)
    async def set_availability(request: Request) -> Response:
        user, _session, form = await checked_post(request, "/konsole/verfuegbarkeit")
        chosen = form.get("verfuegbarkeit", "")
        if chosen not in AVAILABILITY_LABELS:
            raise _FormError(400, "Bitte wählen Sie eine Verfügbarkeit.")
        console.repository.set_availability(user.id, Availability(chosen))
        return RedirectResponse(f"/konsole?gespeichert={chosen}", status_code=303)  # post/redirect/get

    @app.post("/konsole/telefon", include_in_schema=False)
    async def set_own_phone(request: Request) -> Response:
        user, session, form = await checked_post(request, "/konsole/telefon")
        entered = form.get("telefon", "")
        try:
            phone = check_phone_uri(entered, registrar=settings.sip.registrar)
        except StaffSettingError as error:
            return console_page(
                user, session, phone_error=str(error), phone_entered=entered[:MAX_PHONE_URI_CHARS], status=400
            )
        console.repository.update_staff_user(user.id, {"phone_uri": phone})
        return RedirectResponse("/konsole?gespeichert=telefon", status_code=303)  # post/redirect/get

    def configured_groups() -> list[str]:
        return [group.name for group in settings.handoff.groups]

    def member_form(
        member: StaffUser, csrf: str, error: str = "", entered: tuple[str, list[str]] | None = None
    ) -> str:
        """An administrator's form for one member's phone address and groups (none ticked: every group)."""
        key = f"m{member.id}"
        name = html.escape(member.display_name or member.username)
        phone, ticked = entered if entered is not None else (member.phone_uri, member.groups or [])
        error_html = (
            f'<div id="{key}-fehler" class="error" role="alert"><p>{html.escape(error)}</p></div>'
            if error
            else ""
        )
        described = f"{key}-telefon-hilfe {key}-fehler" if error else f"{key}-telefon-hilfe"
        invalid = ' aria-invalid="true"' if error else ""
        groups = configured_groups()
        if groups:
            boxes = "\n".join(
                f'      <p class="option"><input type="checkbox" id="{key}-g{index}" name="gruppe"'
                f' value="{html.escape(group)}"{" checked" if group in ticked else ""}>'
                f' <label for="{key}-g{index}">{html.escape(group)}</label></p>'
                for index, group in enumerate(groups)
            )
            choice = f"""<fieldset>
      <legend>Gruppen</legend>
{boxes}
      <p class="hilfe">Keine angekreuzt: nimmt Anrufe aller Gruppen an.</p>
    </fieldset>"""
        else:
            choice = '<p class="hilfe">Es sind keine Gruppen eingerichtet (handoff.groups): nimmt alle Anrufe an.</p>'
        return f"""<section aria-labelledby="{key}-titel" id="mitglied-{member.id}">
  <h3 id="{key}-titel">{name}</h3>
  {error_html}
  <form method="post" action="/konsole/team/mitglied">
    <input type="hidden" name="csrf" value="{csrf}">
    <input type="hidden" name="mitglied" value="{member.id}">
    <p><label for="{key}-telefon">Telefonadresse (SIP-URI)</label>
       <input id="{key}-telefon" name="telefon" type="text" autocomplete="off" autocapitalize="none"
              spellcheck="false" maxlength="{MAX_PHONE_URI_CHARS}" value="{html.escape(phone)}"
              aria-describedby="{described}"{invalid}>
       <span id="{key}-telefon-hilfe" class="hilfe">Beginnt mit sip:, sips: oder tel:. Leer: kein Telefon.</span></p>
    {choice}
    <p><button type="submit" aria-describedby="{key}-titel">Speichern</button></p>
  </form>
</section>"""

    def team_page(
        viewer: StaffUser,
        session: SessionToken,
        *,
        notice: str = "",
        error: str = "",
        error_member: int | None = None,
        entered: tuple[str, list[str]] | None = None,
        status: int = 200,
    ) -> HTMLResponse:
        members = [u for u in console.repository.staff_users() if not u.disabled]
        rows = "\n".join(
            f"<tr><td>{html.escape(u.display_name or u.username)}</td><td>{html.escape(ROLE_LABELS.get(u.role, u.role))}</td>"
            f"<td>{html.escape(AVAILABILITY_LABELS.get(u.availability, u.availability))}</td>"
            f"<td>{html.escape(u.phone_uri) or 'keins'}</td>"
            f"<td>{html.escape(', '.join(u.groups)) if u.groups is not None else 'alle'}</td></tr>"
            for u in members
        )
        admin = ""
        if viewer.role in ADMINS:
            csrf = console.signer.csrf_token(session)
            forms = "\n".join(
                member_form(u, csrf, error, entered) if u.id == error_member else member_form(u, csrf)
                for u in members
            )
            admin = f"""<section aria-labelledby="team-telefone">
<h2 id="team-telefone">Telefone und Gruppen</h2>
<p>Wohin der Bot eine Person anruft, wenn sie einen wartenden Anruf annimmt, und wessen Anrufe sie sieht.</p>
{forms}
</section>"""
        notice_html = f'<p id="hinweis" role="status">{html.escape(notice)}</p>'
        body = f"""<h1>Team-Übersicht</h1>
{notice_html}
<table>
  <caption>Mitarbeitende und ihre Verfügbarkeit</caption>
  <thead><tr><th scope="col">Name</th><th scope="col">Rolle</th><th scope="col">Verfügbarkeit</th>
    <th scope="col">Telefon</th><th scope="col">Gruppen</th></tr></thead>
  <tbody>
{rows}
  </tbody>
</table>
{admin}
<p><a href="/konsole">Zurück zur Konsole</a></p>"""
        return HTMLResponse(
            _page("Team-Übersicht", body), status_code=status, headers={"Cache-Control": "no-store"}
        )

    @app.get("/konsole/team", include_in_schema=False)
    async def team(request: Request) -> Response:
        viewer, session = console.require(request, "/konsole/team")
        notice = ""
        saved = request.query_params.get("gespeichert", "")
        if saved.isascii() and saved.isdigit() and len(saved) <= 12:
            member = console.repository.staff_user_by_id(int(saved))
            if member is not None:
                notice = f"Gespeichert: Telefon und Gruppen von {member.display_name or member.username}."
        return team_page(viewer, session, notice=notice)

    @app.post("/konsole/team/mitglied", include_in_schema=False)
    async def set_member(request: Request) -> Response:
        groups = configured_groups()
        viewer, session, form = await checked_post_lists(
            request, "/konsole/team/mitglied", max_fields=10 + len(groups)
        )
        raw_id = (form.get("mitglied") or [""])[0]
        member = (
            console.repository.staff_user_by_id(int(raw_id))
            if raw_id.isascii() and raw_id.isdigit() and len(raw_id) <= 12
            else None
        )
        if member is None:
            raise _FormError(404, "Dieses Konto gibt es nicht.")
        entered = (form.get("telefon") or [""])[0]
        ticked = form.get("gruppe") or []
        try:
            phone = check_phone_uri(entered, registrar=settings.sip.registrar)
            chosen = check_groups(ticked, groups) if any(t.strip() for t in ticked) else None
        except StaffSettingError as error:
            shown = (entered[:MAX_PHONE_URI_CHARS], ticked)
            return team_page(
                viewer, session, error=str(error), error_member=member.id, entered=shown, status=400
            )
        console.repository.update_staff_user(member.id, {"phone_uri": phone, "groups": chosen})
        return RedirectResponse(
            f"/konsole/team?gespeichert={member.id}#mitglied-{member.id}", status_code=303
        )

    from voicebot.web.staff_queue import install_staff_queue

    queue_view = install_staff_queue(app, console, checked_post, _page, _message_page)
    from voicebot.web.staff_figures import install_staff_figures

    install_staff_figures(app, console, _page)
    from voicebot.web.staff_privacy import install_staff_privacy

    install_staff_privacy(app, console, checked_post, _page)
    from voicebot.web.staff_review import install_staff_review

    install_staff_review(app, console, _page, checked_post)
    from voicebot.web.staff_dashboard import install_staff_dashboard

    install_staff_dashboard(app, console, _page)
    from voicebot.web.staff_corrections import install_staff_corrections

    install_staff_corrections(app, console, checked_post, _page)
    return console


def route_paths(app: FastAPI) -> list[str]:
    """Every path the app serves (mounts by their prefix)."""
    return [getattr(route, "path", "") for route in app.routes]


def unchecked_routes(app: FastAPI) -> list[str]:
    """Paths without an access decision in :data:`ACCESS` (should be none)."""
    return [path for path in route_paths(app) if path not in ACCESS]
