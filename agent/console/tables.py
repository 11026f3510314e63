"""The console's own tables: its users and the audit log of what they did.

Kept in the appliance database (next to the call records) so one backup and
one retention story cover everything; declared here and created by migration
0005. Passwords are stored only as argon2 hashes.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, String, Table, Text

from agent.store.db import metadata

console_users = Table(
    "console_users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),  # admin | viewer
    Column("password_hash", String(255), nullable=False),  # argon2id, never the password
    Column("created_at", DateTime, nullable=False),
    Column("password_changed_at", DateTime, nullable=False),  # sessions from before a change are void
)

console_audit = Table(
    "console_audit",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime, nullable=False, index=True),
    Column("user", String(64)),  # who (NULL: a failed login for an unknown name is logged with the name given)
    Column("ip", String(64)),
    Column("action", String(32), nullable=False),  # login | login_failed | test_call | upload | user_add | ...
    Column("detail", Text),  # what was done (file name, scenario, result); never a password
)
