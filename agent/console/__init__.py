"""The admin console: a small web UI beside the agent (python -m agent console).

Admins of privacy-sensitive companies should not need a shell to see how the
agent is doing. The console is a separate process from the agent so a bug or a
load spike in it can never touch a call: it reads the same (already redacted)
call records from SQL and polls the agent's loopback /live status, and it can
only do what an admin could do by hand (place a scripted test call through
Asterisk, drop a document into the config's knowledge directory).

Safe by default: no default password (one is generated at install and printed
once), argon2 password hashes, signed sessions with a CSRF token checked on
every POST, login rate limiting, an audit log of admin actions, two roles, and
loopback only unless TLS is configured.
"""
