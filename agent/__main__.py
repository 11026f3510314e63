"""Command line: python -m agent {run,call,chat,check,doctor,models,bench,redact,calls,purge,egress,console,console-user}."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from agent.brain.tools.orders import OrdersError
from agent.config import ConfigError, load_box_settings, load_config
from agent.engines import ModelBroken
from agent.stages.base import ModelMissing


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("faster_whisper", "panoramisk", "asyncio", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    from agent.privacy import log_filter

    log_filter.install()


def cmd_run(args: argparse.Namespace) -> int:
    from agent.engines import load_engines
    from agent.transport.server import AgentServer
    from agent.transport.status import StatusAddressError, parse_address

    config = load_config(args.config)
    box = load_box_settings()
    host, port = box.agent_host_port
    try:
        status = parse_address(args.status_address, args.status_allow_remote)
    except StatusAddressError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    engines = load_engines()
    server = AgentServer(engines, config, box, args.host or host, args.port or port, status)
    asyncio.run(server.serve_forever())
    return 0


def cmd_call(args: argparse.Namespace) -> int:
    from agent.caller.runner import run_call_command

    return run_call_command(args)


def cmd_chat(args: argparse.Namespace) -> int:
    from agent.brain.chat import chat, run_text_suite

    if args.suite:
        result = run_text_suite(args.suite)
        return 0 if result["passed"] == result["scenarios"] else 1
    return chat(args.config, args.caller_id)


def cmd_doctor(args: argparse.Namespace) -> int:
    from agent.doctor import run_doctor

    return run_doctor(args.config, with_models=not args.no_models)


def cmd_check(args: argparse.Namespace) -> int:
    from agent.brain.chat import check

    return check(args.config)


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


def cmd_redact(args: argparse.Namespace) -> int:
    """Filter stdin to stdout, one utterance per line, with the agent's own redaction rules."""
    from agent.privacy.redact import Redactor

    patterns = load_config(args.config).privacy.keep_numbers if args.config else []
    redactor = Redactor.from_patterns(patterns)
    for line in sys.stdin:
        sys.stdout.write(redactor.redact(line.rstrip("\n")) + "\n")
        sys.stdout.flush()
    return 0


def cmd_calls(args: argparse.Namespace) -> int:
    from agent.store import reports
    from agent.store.db import make_engine

    engine = make_engine()
    if args.action == "list":
        print(reports.list_calls(engine, args.limit))
    elif args.action == "show":
        if not args.call:
            print("calls show needs a call id (or its first characters)", file=sys.stderr)
            return 2
        try:
            print(reports.show_call(engine, args.call))
        except reports.UnknownCall as exc:
            print(exc, file=sys.stderr)
            return 1
    else:
        rows = reports.daily_rows(engine) if args.daily else reports.kpi_rows(engine)
        text = reports.export(rows, args.format)
        if args.output:
            args.output.write_text(text, encoding="utf-8")
            print(f"{len(rows)} rows -> {args.output}", file=sys.stderr)
        else:
            sys.stdout.write(text)
    return 0


def cmd_purge(args: argparse.Namespace) -> int:
    from agent.store.db import make_engine
    from agent.store.retention import purge

    config = load_config(args.config)
    print(purge(make_engine(), config.privacy.retention))
    return 0


def cmd_egress(args: argparse.Namespace) -> int:
    """Print (or load) the nftables rules that fence the agent and Asterisk in."""
    import subprocess

    from agent.privacy.egress import ruleset

    rules = ruleset(load_config(args.config), load_box_settings(), table=args.table)
    if not args.apply:
        print(rules, end="")
        return 0
    result = subprocess.run(["nft", "-f", "-"], input=rules, text=True, capture_output=True)
    if result.returncode != 0:
        print(f"nft refused the rules: {result.stderr.strip()}", file=sys.stderr)
        return 1
    print(f"egress rules loaded (nft table inet {args.table})", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agent", description="Self-hosted AI phone agent")
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve calls from Asterisk over AudioSocket")
    run.add_argument("--config", type=Path, help="admin config directory (default: configs/clinic)")
    run.add_argument("--host", help="listen address (default from the box settings, /opt/phone-agent/asterisk.env)")
    run.add_argument(
        "--port", type=int, help="listen port (default from the box settings, /opt/phone-agent/asterisk.env)"
    )
    run.add_argument(
        "--status-address",
        help="HOST:PORT of GET /metrics and /live (default $PHONE_AGENT_STATUS or 127.0.0.1:9464; off: none)",
    )
    run.add_argument("--status-allow-remote", action="store_true", help="allow a status address that is not loopback")
    run.set_defaults(func=cmd_run)

    call = sub.add_parser("call", help="place a scripted test call through the local Asterisk")
    call.add_argument("--script", type=Path, required=True, help="scenario YAML")
    call.add_argument("--config", type=Path, help="start a temporary agent with this config for the call")
    call.add_argument("--json", action="store_true", help="print one JSON object")
    call.add_argument("--record", type=Path, help="write the caller-side recording (WAV) here")
    call.set_defaults(func=cmd_call)

    chat = sub.add_parser("chat", help="talk to the brain as text (lines starting with # are keypad digits)")
    chat.add_argument("--config", type=Path, help="admin config directory (default: configs/clinic)")
    chat.add_argument("--caller-id", help="the caller's number, as Asterisk would pass it")
    chat.add_argument("--suite", type=Path, help="run every scenario under this directory as text instead")
    chat.set_defaults(func=cmd_chat)

    doctor = sub.add_parser("doctor", help="check this box before pointing a trunk at it (each check with its fix)")
    doctor.add_argument("--config", type=Path, help="admin config directory (default: configs/clinic)")
    doctor.add_argument("--no-models", action="store_true", help="skip the model smoke calls (a few seconds)")
    doctor.set_defaults(func=cmd_doctor)

    check = sub.add_parser("check", help="validate a config; list its tasks, slots, tools and overlapping examples")
    check.add_argument("--config", type=Path, help="admin config directory (default: configs/clinic)")
    check.set_defaults(func=cmd_check)

    models = sub.add_parser("models", help="install on-box models and show which are active")
    models.add_argument("--list", action="store_true", help="only show the active models")
    models.add_argument("--no-upstream", action="store_true", help="do not try upstream model hosts")
    models.set_defaults(func=cmd_models)

    bench = sub.add_parser("bench", help="measure latency, ASR accuracy and speed")
    bench.add_argument("--quick", action="store_true", help="one call, one concurrency level, 50 ASR prompts")
    bench.add_argument("--scenarios", type=Path, help="run every scenario under DIR and report the task success rate")
    bench.add_argument("--calls", type=int, help="single calls for the latency numbers (default 5; quick 1)")
    bench.add_argument(
        "--levels",
        type=lambda text: tuple(int(n) for n in text.split(",")),
        help="concurrency levels, e.g. 1,4,8 (default 1,2,4,8,12,16; quick 2)",
    )
    bench.add_argument("--no-asr", action="store_true", help="skip the ASR accuracy run on Asterisk's prompts")
    bench.add_argument(
        "--no-speech-cache",
        action="store_true",
        help="calls with capacity.speech_cache_mb: 0, every sentence synthesized (worst-case load)",
    )
    bench.add_argument(
        "--privacy", action="store_true", help="only PII redaction accuracy and call-record commit times"
    )
    bench.add_argument(
        "--understanding",
        action="store_true",
        help="only intents, upset detection and digit strings on the paraphrase sets (--quick: no spoken digits)",
    )
    bench.add_argument(
        "--knowledge",
        action="store_true",
        help="only the knowledge search on tests/data/knowledge: words, e5 and the MiniLM encoder side by side",
    )
    bench.add_argument(
        "--turn-taking",
        action="store_true",
        help="only end-of-turn policies (fixed silence, Smart Turn) on one-sentence prompts and read-out numbers",
    )
    bench.add_argument(
        "--barge-in",
        action="store_true",
        help="only barge-in detectors: onset time and false stops (echo, noise, mm-hm)",
    )
    bench.add_argument(
        "--asr-models",
        nargs="?",
        const="all",
        metavar="NAMES",
        help="only the Whisper models against each other (all installed, or e.g. tiny.en,base): WER, digit "
        "strings, ms per utterance, RAM; with --levels also concurrent calls per model",
    )
    bench.add_argument(
        "--asr-runs",
        type=int,
        default=3,
        help="passes per model for --asr-models (timing medians; 0: keep the last passes, add the --levels calls)",
    )
    bench.add_argument("--out", type=Path, default=Path("bench-results"))
    bench.set_defaults(func=cmd_bench)

    redact = sub.add_parser("redact", help="redact personal data: stdin to stdout, one utterance per line")
    redact.add_argument("--config", type=Path, help="use this deployment's business identifiers (keep_numbers)")
    redact.set_defaults(func=cmd_redact)

    calls = sub.add_parser("calls", help="call records: list, show one transcript, export KPIs")
    calls.add_argument("action", choices=["list", "show", "export"])
    calls.add_argument("call", nargs="?", help="call id or its first characters (show)")
    calls.add_argument("--limit", type=int, default=20, help="list: newest N calls")
    calls.add_argument("--format", choices=["csv", "json"], default="csv", help="export format")
    calls.add_argument("--daily", action="store_true", help="export the per-day aggregates instead of per call")
    calls.add_argument("--output", type=Path, help="export to this file instead of stdout")
    calls.set_defaults(func=cmd_calls)

    purge = sub.add_parser("purge", help="delete records past their retention (the agent also does this itself)")
    purge.add_argument("--config", type=Path, help="config directory with the retention rules")
    purge.set_defaults(func=cmd_purge)

    egress = sub.add_parser("egress", help="nftables rules: the agent reaches only loopback and allowed hosts")
    egress.add_argument("--config", type=Path, help="config directory (tools.allowed_hosts)")
    egress.add_argument("--apply", action="store_true", help="load the rules with nft (root)")
    egress.add_argument("--table", default="phone_agent_egress", help="nftables table name")
    egress.set_defaults(func=cmd_egress)

    from agent.console.server import add_parsers as add_console_parsers

    add_console_parsers(sub)

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
    except ModelBroken as exc:
        print(f"model error: {exc}", file=sys.stderr)
        return 2
    except OrdersError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
