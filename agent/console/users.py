"""Console users, passwords and the audit log.

Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106 low-memory
profile) and only the hash is stored. There is no default password: the first
admin is created at install with a generated password that is printed once
(`python -m agent console-user init`), or by the admin with
`python -m agent console-user add NAME --role admin`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import sys
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import Engine, delete, func, insert, select, update

from agent.console.tables import console_audit, console_users

ROLES = ("admin", "viewer")
MIN_PASSWORD = 12
_NAME = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_hasher = PasswordHasher()
# a hash to verify against when the name is unknown, so a login takes as long either way
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class UserError(ValueError):
    pass


@dataclass(frozen=True)
class User:
    id: int
    name: str
    role: str
    stamp: str  # changes when the password changes: a session carries it, so a change ends old sessions

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def generate_password() -> str:
    return secrets.token_urlsafe(15)  # 20 characters, 120 bits


def _stamp(password_hash: str) -> str:
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def _user(row) -> User:
    return User(row.id, row.name, row.role, _stamp(row.password_hash))


def _check(name: str, role: str | None, password: str | None) -> None:
    if not _NAME.match(name):
        raise UserError("a user name is 1-64 letters, digits, '.', '_' or '-'")
    if role is not None and role not in ROLES:
        raise UserError(f"role must be one of {', '.join(ROLES)}")
    if password is not None and len(password) < MIN_PASSWORD:
        raise UserError(f"a password needs at least {MIN_PASSWORD} characters")


def add_user(engine: Engine, name: str, role: str, password: str) -> User:
    _check(name, role, password)
    now = _now()
    with engine.begin() as conn:
        if conn.execute(select(console_users.c.id).where(console_users.c.name == name)).first():
            raise UserError(f"user {name} exists (set a new password with: console-user passwd {name})")
        conn.execute(
            insert(console_users).values(
                name=name, role=role, password_hash=_hasher.hash(password), created_at=now, password_changed_at=now
            )
        )
        return _user(conn.execute(select(console_users).where(console_users.c.name == name)).one())


def set_password(engine: Engine, name: str, password: str) -> None:
    _check(name, None, password)
    with engine.begin() as conn:
        done = conn.execute(
            update(console_users)
            .where(console_users.c.name == name)
            .values(password_hash=_hasher.hash(password), password_changed_at=_now())
        ).rowcount
    if not done:
        raise UserError(f"no user {name}")


def set_role(engine: Engine, name: str, role: str) -> None:
    _check(name, role, None)
    with engine.begin() as conn:
        if role != "admin" and _is_last_admin(conn, name):
            raise UserError("the last admin cannot become a viewer")
        if not conn.execute(update(console_users).where(console_users.c.name == name).values(role=role)).rowcount:
            raise UserError(f"no user {name}")


def remove_user(engine: Engine, name: str) -> None:
    with engine.begin() as conn:
        if _is_last_admin(conn, name):
            raise UserError("the last admin cannot be removed")
        if not conn.execute(delete(console_users).where(console_users.c.name == name)).rowcount:
            raise UserError(f"no user {name}")


def _is_last_admin(conn, name: str) -> bool:
    admins = [r.name for r in conn.execute(select(console_users.c.name).where(console_users.c.role == "admin"))]
    return admins == [name]


def list_users(engine: Engine) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                console_users.c.name,
                console_users.c.role,
                console_users.c.created_at,
                console_users.c.password_changed_at,
            ).order_by(console_users.c.name)  # fmt: skip
        ).mappings()
        return [dict(r) for r in rows]


def count_admins(engine: Engine) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).where(console_users.c.role == "admin")).scalar() or 0


def authenticate(engine: Engine, name: str, password: str) -> User | None:
    """The user if the password is right; None otherwise (same work whether or not the name exists)."""
    with engine.connect() as conn:
        row = conn.execute(select(console_users).where(console_users.c.name == name)).first()
    try:
        _hasher.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None:
        return None
    if _hasher.check_needs_rehash(row.password_hash):
        with engine.begin() as conn:
            conn.execute(
                update(console_users).where(console_users.c.id == row.id).values(password_hash=_hasher.hash(password))
            )
        return get_user(engine, row.id)
    return _user(row)


def get_user(engine: Engine, user_id: int) -> User | None:
    with engine.connect() as conn:
        row = conn.execute(select(console_users).where(console_users.c.id == user_id)).first()
    return _user(row) if row else None


def audit(engine: Engine, user: str | None, ip: str | None, action: str, detail: str = "") -> None:
    with engine.begin() as conn:
        conn.execute(insert(console_audit).values(at=_now(), user=user, ip=ip, action=action, detail=detail[:2000]))


def audit_log(engine: Engine, limit: int = 200) -> list[dict]:
    with engine.connect() as conn:
        rows = conn.execute(select(console_audit).order_by(console_audit.c.id.desc()).limit(limit)).mappings()
        return [dict(r) for r in rows]


def init_admin(engine: Engine, out=None) -> str | None:
    """At install: with no admin yet, create `admin` with a generated password and print it once."""
    if count_admins(engine):
        return None
    name = "admin"
    with engine.connect() as conn:
        taken = {r.name for r in conn.execute(select(console_users.c.name))}
    while name in taken:
        name = f"admin{secrets.randbelow(1000)}"
    password = generate_password()
    add_user(engine, name, "admin", password)
    audit(engine, None, None, "user_add", f"{name} (admin) created at install")
    print(f"console login: user {name}, password {password}  (shown once; only its hash is stored."
          f" Change it: python -m agent console-user passwd {name})", file=out or sys.stdout)  # fmt: skip
    return password
