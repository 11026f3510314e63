"""Start the example backends the bundled configs' webhooks talk to (tests, `agent chat`, the suite)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from agent.config import CONFIGS_DIR


@contextlib.contextmanager
def example_backends(config_dirs: Iterable[Path] | None = None) -> Iterator[None]:
    """The shop's CRM and each config's backend.yaml server on loopback, unless already running."""
    from agent.examples import backend, crm

    servers = []
    with contextlib.suppress(OSError):
        servers.append(crm.start(8099))
    for config_dir in sorted(config_dirs if config_dirs is not None else CONFIGS_DIR.iterdir()):
        if (config_dir / "backend.yaml").is_file():
            with contextlib.suppress(OSError):
                servers.append(backend.start(config_dir))
    try:
        yield
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()
