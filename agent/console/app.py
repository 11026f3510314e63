"""The console's web application (Starlette): pages, sessions, CSRF, roles, rate limiting.

Every page needs a login; viewers read, admins also test, upload and manage
users. Sessions are signed cookies (itsdangerous through Starlette's
SessionMiddleware: SameSite=Strict, HttpOnly, Secure under TLS, 8 h) carrying the
user id, a stamp of the password hash (a password change or a removed user ends
every session at once) and a CSRF token that every POST must echo. Responses
forbid framing, inline script and any other origin (CSP), so the pages work
with no CDN and nothing leaves the box. All call data comes from the redacted
records; nothing here reads audio or text from the agent other than its
redacted /live status.
"""

from __future__ import annotations

import collections
import contextlib
import datetime as dt
import json
import re
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Engine, and_, exists, select
from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, PlainTextResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from agent.call.recording import RECORDINGS_DIR
from agent.console import deployment, kpis, users
from agent.console.live import LiveFeed
from agent.store import reports
from agent.store.records import calls, read_record, turns

HERE = Path(__file__).resolve().parent
SESSION_S = 8 * 3600
LOGIN_WINDOW_S = 15 * 60
LOGIN_FAILURES_PER_USER = 5  # per IP and user name within the window
LOGIN_FAILURES_PER_IP = 20
_CALL_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")  # fmt: skip


@dataclass
class ConsoleSettings:
    engine: Engine
    config_dir: Path
    status_address: str
    secret_key: str
    agent_address: str | None = None  # AudioSocket address test calls name (X-Agent-Address); None: the box's
    database: str | None = None  # the database URL test calls' records are read from
    tls: bool = False
    recordings_dir: Path = RECORDINGS_DIR


class LoginLimiter:
    """Failed logins per (IP, user) and per IP in a sliding window; a success clears the user's count."""

    def __init__(self, per_user: int = LOGIN_FAILURES_PER_USER, per_ip: int = LOGIN_FAILURES_PER_IP,
                 window_s: float = LOGIN_WINDOW_S, clock=time.monotonic) -> None:  # fmt: skip
        self.per_user, self.per_ip, self.window_s, self.clock = per_user, per_ip, window_s, clock
        self._failures: dict[tuple, collections.deque] = collections.defaultdict(collections.deque)

    def _recent(self, key: tuple) -> int:
        times = self._failures[key]
        while times and self.clock() - times[0] > self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            return 0
        return len(times)

    def blocked(self, ip: str, name: str) -> bool:
        return self._recent((ip, name.lower())) >= self.per_user or self._recent((ip,)) >= self.per_ip

    def failed(self, ip: str, name: str) -> None:
        now = self.clock()
        self._failures[(ip, name.lower())].append(now)
        self._failures[(ip,)].append(now)

    def succeeded(self, ip: str, name: str) -> None:
        self._failures.pop((ip, name.lower()), None)


class Denied(Exception):
    def __init__(self, response: Response) -> None:
        self.response = response


def create_app(settings: ConsoleSettings, live: LiveFeed | None = None, checker=None) -> Starlette:
    templates = Jinja2Templates(directory=str(HERE / "templates"))
    templates.env.filters["kpi"] = kpis.display
    templates.env.filters["json"] = lambda value: json.dumps(value, ensure_ascii=False)
    live = live or LiveFeed(settings.status_address)
    limiter = LoginLimiter()
    checker = checker or deployment.Checker(settings.config_dir)
    tests = deployment.TestCalls(settings.agent_address, settings.database)
    engine = settings.engine

    def client_ip(request: Request) -> str:
        return request.client.host if request.client else "?"

    def csrf_token(request: Request) -> str:
        if "csrf" not in request.session:
            request.session["csrf"] = secrets.token_urlsafe(32)
        return request.session["csrf"]

    def current_user(request: Request) -> users.User | None:
        uid = request.session.get("uid")
        if uid is None:
            return None
        user = users.get_user(engine, uid)
        if user is None or user.stamp != request.session.get("stamp") or \
                time.time() - request.session.get("at", 0) > SESSION_S:  # fmt: skip
            request.session.clear()
            return None
        return user

    def require(request: Request, role: str = "viewer") -> users.User:
        user = current_user(request)
        if user is None:
            raise Denied(RedirectResponse("/login", status_code=303))
        if role == "admin" and not user.is_admin:
            if request.method == "POST":
                users.audit(engine, user.name, client_ip(request), "denied", f"{request.method} {request.url.path}")
            raise Denied(PlainTextResponse("admins only", status_code=403))
        return user

    async def checked_form(request: Request, **limits):
        """The POSTed form, if its CSRF token is this session's (and the request is same-origin)."""
        form = await request.form(**limits)
        origin = request.headers.get("origin")
        expected = request.session.get("csrf")
        same_origin = origin is None or origin == f"{request.url.scheme}://{request.url.netloc}"
        if not expected or not same_origin or not secrets.compare_digest(str(form.get("csrf", "")), expected):
            user = request.session.get("name")
            users.audit(engine, user, client_ip(request), "csrf_rejected", request.url.path)
            raise Denied(PlainTextResponse("invalid or missing CSRF token; reload the page", status_code=403))
        return form

    def page(request: Request, name: str, user: users.User | None, **context) -> Response:
        response = templates.TemplateResponse(
            request, name, {"user": user, "csrf": csrf_token(request), "path": request.url.path, **context}
        )
        return response

    # ---- login ----

    async def login_page(request: Request) -> Response:
        if current_user(request):
            return RedirectResponse("/", status_code=303)
        return page(request, "login.html", None, error=None)

    async def login(request: Request) -> Response:
        form = await checked_form(request)
        name, password = str(form.get("username", ""))[:64], str(form.get("password", ""))[:1024]
        ip = client_ip(request)
        if limiter.blocked(ip, name):
            users.audit(engine, name, ip, "login_blocked", "too many failed logins")
            response = page(request, "login.html", None, error="Too many failed logins. Try again in 15 minutes.")
            response.status_code = 429
            return response
        user = users.authenticate(engine, name, password)
        if user is None:
            limiter.failed(ip, name)
            users.audit(engine, name, ip, "login_failed")
            response = page(request, "login.html", None, error="Wrong user name or password.")
            response.status_code = 401
            return response
        limiter.succeeded(ip, name)
        request.session.clear()  # a new session: new CSRF token
        request.session.update(uid=user.id, name=user.name, stamp=user.stamp, at=time.time(),
                               csrf=secrets.token_urlsafe(32))  # fmt: skip
        users.audit(engine, user.name, ip, "login", user.role)
        return RedirectResponse("/", status_code=303)

    async def logout(request: Request) -> Response:
        await checked_form(request)
        if name := request.session.get("name"):
            users.audit(engine, name, client_ip(request), "logout")
        request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # ---- pages ----

    async def dashboard(request: Request) -> Response:
        user = require(request)
        summary = kpis.summarize(reports.kpi_rows(engine), reports.turn_latencies(engine))
        return page(request, "dashboard.html", user, summary=summary, charts=kpis.charts(summary),
                    windows=[("today", "Today"), ("7d", "7 days"), ("30d", "30 days")])  # fmt: skip

    async def live_page(request: Request) -> Response:
        user = require(request)
        return page(request, "live.html", user, snapshot=live.snapshot)

    async def live_events(request: Request) -> Response:
        require(request)
        return StreamingResponse(
            live.events(request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    async def calls_page(request: Request) -> Response:
        user = require(request)
        q = request.query_params
        filters = {k: q.get(k, "").strip() for k in ("since", "until", "outcome", "reason", "task")}
        query = select(calls).order_by(calls.c.started_at.desc()).limit(200)
        conditions = []
        with contextlib.suppress(ValueError):
            if filters["since"]:
                conditions.append(calls.c.started_at >= dt.datetime.fromisoformat(filters["since"]))
        with contextlib.suppress(ValueError):
            if filters["until"]:
                conditions.append(
                    calls.c.started_at < dt.datetime.fromisoformat(filters["until"]) + dt.timedelta(days=1)
                )
        if filters["outcome"]:
            conditions.append(calls.c.outcome == filters["outcome"])
        if filters["reason"]:
            conditions.append(calls.c.transfer_reason == filters["reason"])
        if filters["task"]:
            conditions.append(exists().where(and_(turns.c.call_id == calls.c.id, turns.c.intent == filters["task"])))
        if conditions:
            query = query.where(and_(*conditions))
        with engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
            outcomes = sorted(o for (o,) in conn.execute(select(calls.c.outcome).distinct()) if o)
            reasons = sorted(r for (r,) in conn.execute(select(calls.c.transfer_reason).distinct()) if r)
        tasks = [t["name"] for t in deployment.describe(settings.config_dir)["tasks"]]
        return page(request, "calls.html", user, rows=rows, filters=filters, outcomes=outcomes, reasons=reasons,
                    tasks=tasks)  # fmt: skip

    def find_call(call_id: str) -> dict:
        with engine.connect() as conn:
            row = conn.execute(select(calls).where(calls.c.id == call_id)).mappings().first() \
                if _CALL_ID.match(call_id) else None  # fmt: skip
        if row is None:
            raise Denied(PlainTextResponse("no such call", status_code=404))
        return dict(row)

    async def call_page(request: Request) -> Response:
        user = require(request)
        call = find_call(request.path_params["call_id"])
        events = read_record(call["id"], engine, wait_s=0)
        recording = (settings.recordings_dir / f"{call['id']}.wav").is_file()
        latencies = reports.turn_latencies(engine).get(call["id"], [])
        return page(request, "call.html", user, call=call, events=events, recording=recording,
                    reply_p50=kpis.percentile(latencies, 50), reply_max=max(latencies) if latencies else None)  # fmt: skip

    async def call_recording(request: Request) -> Response:
        user = require(request)
        call = find_call(request.path_params["call_id"])
        path = settings.recordings_dir / f"{call['id']}.wav"
        if not path.is_file():
            return PlainTextResponse("no recording", status_code=404)
        users.audit(engine, user.name, client_ip(request), "recording_played", call["id"])
        return FileResponse(path, media_type="audio/wav", headers={"Cache-Control": "no-store"})

    async def deployment_page(request: Request) -> Response:
        user = require(request)
        info = deployment.describe(settings.config_dir)
        check = checker.result()
        scenarios = [p.name for p in deployment.scenarios_for(settings.config_dir)]
        return page(request, "deployment.html", user, info=info, check=check, scenarios=scenarios,
                    test=tests.current, config_dir=settings.config_dir,
                    message=request.session.pop("message", None))  # fmt: skip

    async def run_test(request: Request) -> Response:
        user = require(request, "admin")
        form = await checked_form(request)
        choices = {p.name: p for p in deployment.scenarios_for(settings.config_dir)}
        name = str(form.get("scenario", ""))
        if name not in choices:
            return PlainTextResponse("unknown scenario", status_code=400)
        if tests.running:
            request.session["message"] = "A test call is already running."
            return RedirectResponse("/deployment", status_code=303)
        ip = client_ip(request)
        users.audit(engine, user.name, ip, "test_call", f"{name}: started")

        def done(job: deployment.TestCall) -> None:
            result = job.error or f"outcome {job.report.get('outcome')}, call {job.report.get('call_id')}"
            users.audit(engine, user.name, ip, "test_call", f"{name}: {job.state} ({result})")

        tests.start(choices[name], user.name, done)
        return RedirectResponse("/deployment", status_code=303)

    async def upload(request: Request) -> Response:
        user = require(request, "admin")
        form = await checked_form(request, max_files=1, max_fields=5, max_part_size=deployment.MAX_UPLOAD + 1)
        item = form.get("document")
        if not isinstance(item, UploadFile):
            return PlainTextResponse("no file", status_code=400)
        data = await item.read(deployment.MAX_UPLOAD + 1)
        knowledge = settings.config_dir / "knowledge"
        try:
            path = deployment.save_upload(knowledge, item.filename or "", data)
        except deployment.UploadError as exc:
            users.audit(engine, user.name, client_ip(request), "upload_refused", f"{item.filename}: {exc}")
            request.session["message"] = f"Upload refused: {exc}"
            return RedirectResponse("/deployment", status_code=303)
        users.audit(engine, user.name, client_ip(request), "upload", f"{path.name} ({len(data)} bytes)")
        request.session["message"] = f"{path.name} saved to {knowledge}; the agent reloads it within seconds."
        return RedirectResponse("/deployment", status_code=303)

    async def admin_page(request: Request) -> Response:
        user = require(request, "admin")
        return page(request, "admin.html", user, users=users.list_users(engine), audit=users.audit_log(engine),
                    message=request.session.pop("message", None), roles=users.ROLES)  # fmt: skip

    async def manage_user(request: Request) -> Response:
        user = require(request, "admin")
        form = await checked_form(request)
        action, name, role = str(form.get("action", "")), str(form.get("name", "")), str(form.get("role", ""))
        ip = client_ip(request)
        try:
            if action == "add":
                password = users.generate_password()
                users.add_user(engine, name, role, password)
                message = f"User {name} ({role}) added. Password (shown once): {password}"
                detail = f"{name} ({role})"
            elif action == "reset":
                password = users.generate_password()
                users.set_password(engine, name, password)
                message = f"New password for {name} (shown once): {password}"
                detail = name
            elif action == "role":
                users.set_role(engine, name, role)
                message, detail = f"{name} is now {role}.", f"{name} -> {role}"
            elif action == "remove":
                users.remove_user(engine, name)
                message, detail = f"{name} removed.", name
            else:
                return PlainTextResponse("unknown action", status_code=400)
        except users.UserError as exc:
            request.session["message"] = str(exc)
            return RedirectResponse("/admin", status_code=303)
        users.audit(engine, user.name, ip, f"user_{action}", detail)
        request.session["message"] = message
        return RedirectResponse("/admin", status_code=303)

    def guarded(handler):
        async def endpoint(request: Request) -> Response:
            try:
                return await handler(request)
            except Denied as denied:
                return denied.response

        return endpoint

    @contextlib.asynccontextmanager
    async def lifespan(_app):
        await live.start()
        yield
        await live.stop()

    routes = [
        Route("/login", guarded(login_page), methods=["GET"]),
        Route("/login", guarded(login), methods=["POST"]),
        Route("/logout", guarded(logout), methods=["POST"]),
        Route("/", guarded(dashboard)),
        Route("/live", guarded(live_page)),
        Route("/live/events", guarded(live_events)),
        Route("/calls", guarded(calls_page)),
        Route("/calls/{call_id}", guarded(call_page)),
        Route("/calls/{call_id}/recording", guarded(call_recording)),
        Route("/deployment", guarded(deployment_page)),
        Route("/deployment/test", guarded(run_test), methods=["POST"]),
        Route("/deployment/upload", guarded(upload), methods=["POST"]),
        Route("/admin", guarded(admin_page)),
        Route("/admin/users", guarded(manage_user), methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        middleware=[
            Middleware(SecurityHeaders, tls=settings.tls),
            Middleware(
                SessionMiddleware,
                secret_key=settings.secret_key,
                session_cookie="phone_agent_console",
                max_age=SESSION_S,
                same_site="strict",
                https_only=settings.tls,
            ),  # fmt: skip
        ],
    )
    app.state.tests = tests
    app.state.live = live
    return app


class SecurityHeaders:
    """Plain ASGI middleware (streams such as the SSE feed pass through untouched): CSP, no framing, no cache."""

    def __init__(self, app, tls: bool = False) -> None:
        self.app = app
        self.tls = tls

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                extra = [(b"content-security-policy", CSP.encode()), (b"x-frame-options", b"DENY"),
                         (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]  # fmt: skip
                names = {k.lower() for k, _ in message.get("headers", [])}
                if b"cache-control" not in names:
                    extra.append((b"cache-control", b"no-store"))
                if self.tls:
                    extra.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
