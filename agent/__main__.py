"""Command line: python -m agent {run,call,models,bench}."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from agent.brain.tools.orders import OrdersError
from agent.config import ConfigError, load_box_settings, load_config
from agent.stages.base import ModelMissing


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("faster_whisper", "panoramisk", "asyncio"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from agent.privacy import log_filter

    log_filter.install()


def cmd_run(args: argparse.Namespace) -> int:
    from agent.engines import load_engines
    from agent.transport.server import AgentServer

    config = load_config(args.config)
    box = load_box_settings()
    host, port = box.agent_host_port
    engines = load_engines()
    server = AgentServer(engines, config, box, args.host or host, args.port or port)
    asyncio.run(server.serve_forever())
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    from agent.caller.runner import run_call_command

    return run_call_command(args)


def cmd_models(args: argparse.Namespace) -> int:
    from agent.models import active_models, install_models

    if args.list:
        for choice in active_models():
            print(choice.describe())
        return 0
    install_models(upstream=not args.no_upstream)
    return 0


def cmd_bench(args: argparse.Namespace) -> int:
    from agent.bench import run_bench

    return run_bench(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent", description="Self-hosted AI phone agent")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve calls from Asterisk over AudioSocket")
    run.add_argument("--config", type=Path, help="admin config directory (default: configs/clinic)")
    run.add_argument("--host", help="listen address (default from state/asterisk.env)")
    run.add_argument("--port", type=int, help="listen port (default from state/asterisk.env)")
    run.set_defaults(func=cmd_run)

    call = sub.add_parser("call", help="place a scripted test call through the local Asterisk")
    call.add_argument("--script", type=Path, required=True, help="scenario YAML")
    call.add_argument("--config", type=Path, help="start a temporary agent with this config for the call")
    call.add_argument("--json", action="store_true", help="print one JSON object")
    call.add_argument("--record", type=Path, help="write the caller-side recording (WAV) here")
    call.set_defaults(func=cmd_call)

    models = sub.add_parser("models", help="install on-box models and show which are active")
    models.add_argument("--list", action="store_true", help="only show the active models")
    models.add_argument("--no-upstream", action="store_true", help="do not try upstream model hosts")
    models.set_defaults(func=cmd_models)

    bench = sub.add_parser("bench", help="measure latency, ASR accuracy and speed")
    bench.add_argument("--quick", action="store_true", help="one call, one concurrency level, 50 ASR prompts")
    bench.add_argument("--scenarios", type=Path, help="run every scenario under DIR and report the task success rate")
    bench.add_argument("--out", type=Path, default=Path("bench-results"))
    bench.set_defaults(func=cmd_bench)

    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except ModelMissing as exc:
        print(f"model missing: {exc}", file=sys.stderr)
        return 2
    except OrdersError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
