"""`python -m agent console` and `python -m agent console-user`: serve the console, manage its users.

The console listens on 127.0.0.1:8090 by default. Any other address needs
--tls-cert and --tls-key: a login page must never travel in clear text off
the box. The session signing key is generated once into state/console.key
(0600); deleting it logs everyone out.
"""

from __future__ import annotations

import getpass
import logging
import os
import secrets
import sys
from pathlib import Path

from agent.config import DEFAULT_CONFIG_DIR, STATE_DIR
from agent.console import users
from agent.console.live import default_status_address
from agent.store.db import database_url, describe_url, make_engine
from agent.transport.status import _loopback as is_loopback  # the agent's status endpoint uses the same test

log = logging.getLogger(__name__)
DEFAULT_LISTEN = "127.0.0.1:8090"


def split_address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def secret_key(path: Path | None = None) -> str:
    path = path or STATE_DIR / "console.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_urlsafe(48))
    return path.read_text().strip()


def serve(args) -> int:
    import uvicorn

    from agent.console.app import ConsoleSettings, create_app

    try:
        host, port = split_address(args.listen)
    except ValueError as exc:
        print(f"--listen: {exc}", file=sys.stderr)
        return 2
    tls = bool(args.tls_cert and args.tls_key)
    if bool(args.tls_cert) != bool(args.tls_key):
        print("--tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    if not is_loopback(host) and not tls:
        print(f"refusing to listen on {host} without TLS: give --tls-cert and --tls-key, or listen on 127.0.0.1",
              file=sys.stderr)  # fmt: skip
        return 2
    url = database_url()
    engine = make_engine(url)
    if not users.count_admins(engine):
        log.warning("no console admin yet: python -m agent console-user init (or add NAME --role admin)")
    settings = ConsoleSettings(
        engine=engine,
        config_dir=Path(args.config or DEFAULT_CONFIG_DIR),
        status_address=args.agent_status or default_status_address(),
        secret_key=secret_key(),
        agent_address=args.agent_address,
        database=url,
        tls=tls,
    )
    scheme = "https" if tls else "http"
    print(f"console on {scheme}://{args.listen} (database {describe_url(url)}, agent status {settings.status_address})",
          file=sys.stderr, flush=True)  # fmt: skip
    uvicorn.run(
        create_app(settings), host=host, port=port, ssl_certfile=args.tls_cert, ssl_keyfile=args.tls_key,
        log_level="warning", access_log=False, proxy_headers=False, server_header=False,
        timeout_graceful_shutdown=3,  # open live pages (SSE) must not hold up a stop
    )  # fmt: skip
    return 0


def _read_password(confirm: bool) -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    password = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != password:
        raise users.UserError("the passwords differ")
    return password


def user_command(args) -> int:
    engine = make_engine()
    try:
        if args.action == "init":
            if users.init_admin(engine) is None:
                print("a console admin exists already (python -m agent console-user list)", file=sys.stderr)
            return 0
        if args.action == "list":
            for user in users.list_users(engine):
                print(
                    f"{user['name']:24} {user['role']:7} password set {user['password_changed_at']:%Y-%m-%d %H:%M} UTC"
                )
            return 0
        if not args.name:
            raise users.UserError(f"console-user {args.action} needs a user name")
        if args.action in ("add", "passwd"):
            password = users.generate_password() if args.generate else _read_password(confirm=True)
            if args.action == "add":
                users.add_user(engine, args.name, args.role, password)
            else:
                users.set_password(engine, args.name, password)
            if args.generate:
                print(f"password for {args.name} (shown once): {password}")
            detail = f"{args.name} ({args.role})" if args.action == "add" else args.name
            users.audit(engine, None, "cli", "user_add" if args.action == "add" else "user_reset", detail)
        elif args.action == "role":
            users.set_role(engine, args.name, args.role)
            users.audit(engine, None, "cli", "user_role", f"{args.name} -> {args.role}")
        elif args.action == "remove":
            users.remove_user(engine, args.name)
            users.audit(engine, None, "cli", "user_remove", args.name)
    except users.UserError as exc:
        print(f"console-user: {exc}", file=sys.stderr)
        return 1
    print(f"console-user {args.action} {args.name}: done", file=sys.stderr)
    return 0


def add_parsers(sub) -> None:
    console = sub.add_parser("console", help="the admin web console (loopback unless TLS is configured)")
    console.add_argument("--config", type=Path, help="the active config directory (default: configs/clinic)")
    console.add_argument("--listen", default=DEFAULT_LISTEN, help=f"HOST:PORT (default {DEFAULT_LISTEN})")
    console.add_argument(
        "--agent-status", help="the agent's status HOST:PORT (default $PHONE_AGENT_STATUS or 127.0.0.1:9464)"
    )
    console.add_argument(
        "--agent-address", help="the agent's AudioSocket HOST:PORT for test calls (default: the box's)"
    )
    console.add_argument("--tls-cert", help="PEM certificate: required to listen on a non-loopback address")
    console.add_argument("--tls-key", help="PEM private key for --tls-cert")
    console.set_defaults(func=serve)

    user = sub.add_parser("console-user", help="console users: init, add, passwd, role, remove, list")
    user.add_argument("action", choices=["init", "add", "passwd", "role", "remove", "list"])
    user.add_argument("name", nargs="?")
    user.add_argument("--role", choices=users.ROLES, default="viewer")
    user.add_argument("--generate", action="store_true", help="generate a password and print it once")
    user.set_defaults(func=user_command)
