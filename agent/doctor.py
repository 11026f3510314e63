"""`python -m agent doctor`: is this box ready for a trunk? One line per check, with the fix.

Checks what an admin needs before pointing a SIP trunk at the appliance: the
CPU and a real call to each model, Asterisk up and the agent's AMI login
working, the ports, the no-egress sandbox, the database, and disk space.
Exit status 1 when a check fails (warnings do not fail).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.config import BOX_DIR, PROJECT_ROOT, STATE_DIR, load_box_settings, load_config

OK, WARN, FAIL = "ok", "warn", "FAIL"
MIN_FREE_GB = 2.0


@dataclass
class Check:
    name: str
    status: str
    detail: str
    fix: str = ""


def _cpu() -> Check:
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[1].split())
            break
    wanted = ["avx2", "avx512f", "amx_int8"]
    have = [f for f in wanted if f in flags]
    detail = f"{len(os_cpus())} cores; {', '.join(have) or 'no AVX2'}"
    if "amx_int8" in flags:
        detail += " (AMX: llama.cpp runs without its AMX kernels, which crash; see docs)"
    if "avx2" not in flags:
        return Check("cpu", WARN, detail, "without AVX2 the models run several times slower")
    return Check("cpu", OK, detail)


def os_cpus() -> list[int]:
    import os

    return sorted(os.sched_getaffinity(0))


def _models() -> list[Check]:
    from agent.engines import check_synthesizer, check_transcriber, load_transcriber
    from agent.models import active_models
    from agent.stages.llm_llama import smoke_check

    checks = []
    for choice in active_models():
        role = choice.role.lower()
        label = f"{role} model"
        if choice.path is None or not choice.path.exists():
            checks.append(Check(label, FAIL, f"{choice.model} is not installed", "python -m agent models"))
            continue
        try:
            if role == "llm":
                failure = smoke_check(choice.path)
                if failure:
                    raise RuntimeError(failure)
            elif role == "asr":
                check_transcriber(load_transcriber(choice), choice.model)
            else:
                from agent.stages.tts_piper import PiperSynthesizer

                check_synthesizer(PiperSynthesizer(choice.path), choice.model)
        except Exception as exc:  # every model failure is a line here, never a traceback
            fix = "python -m agent models (or reinstall the package named in the message)"
            # without a working LLM calls still run (extractive answers, decisions by rule): a warning
            checks.append(Check(label, WARN if role == "llm" else FAIL, f"{choice.model}: {exc}", fix))
            continue
        checks.append(Check(label, OK, f"{choice.engine} / {choice.model}: a real call worked"))
    return checks


def _asterisk() -> list[Check]:
    box = load_box_settings()
    env = BOX_DIR / "asterisk.env"
    if not env.exists():
        return [Check("asterisk", FAIL, f"not installed ({env} missing)", "bash scripts/asterisk.sh install")]
    checks = []
    try:
        with socket.create_connection(("127.0.0.1", box.ami_port), timeout=2) as ami:
            ami.settimeout(3)
            banner = ami.recv(256).decode(errors="replace").strip()
            ami.sendall(
                f"Action: Login\r\nUsername: {box.ami_user}\r\nSecret: {box.ami_secret}\r\nEvents: off\r\n\r\n".encode()
            )
            answer = ami.recv(1024).decode(errors="replace")
    except OSError as exc:
        return [Check("asterisk", FAIL, f"AMI on 127.0.0.1:{box.ami_port} unreachable ({exc})",
                      "bash scripts/asterisk.sh start")]  # fmt: skip
    checks.append(Check("asterisk", OK, f"running ({banner})"))
    if "Success" in answer:
        checks.append(Check("ami login", OK, f"user {box.ami_user} logs in"))
    else:
        checks.append(Check("ami login", FAIL, "the agent's AMI credentials are refused",
                            f"bash scripts/asterisk.sh reload (credentials: {env})"))  # fmt: skip
    host, port = box.agent_host_port
    checks.append(
        Check("ports", OK, f"SIP {box.sip_host}:{box.sip_port}, agent {host}:{port}, AMI 127.0.0.1:{box.ami_port}")
    )
    if box.sip_host not in ("127.0.0.1", "::1") and box.trunk_address == "203.0.113.10":
        checks.append(Check("trunk", WARN, "SIP listens beyond loopback but TRUNK_ADDRESS is the example address",
                            f"set TRUNK_ADDRESS in {env}"))  # fmt: skip
    return checks


def _sandbox() -> Check:
    done = subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "sandbox.sh"), "check"], capture_output=True, text=True
    )
    if done.returncode == 0:
        return Check("sandbox", OK, "nftables no-egress sandbox available")
    reason = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["unknown"]
    return Check(
        "sandbox", WARN, f"not available: {reason[0]}", "install nftables and run as root (scripts/setup-system.sh)"
    )


def _database() -> Check:
    from sqlalchemy import text

    from agent.store.db import database_url, make_engine

    url = database_url()
    where = url.split("@")[-1] if "@" in url else url
    try:
        engine = make_engine(url)
        with engine.connect() as db:
            db.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:
        return Check(
            "database",
            FAIL,
            f"{where}: {type(exc).__name__}",
            "bash scripts/postgres.sh start, or unset PHONE_AGENT_DB",
        )
    return Check("database", OK, where)


def _disk() -> Check:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    free = shutil.disk_usage(STATE_DIR).free / 2**30
    if free < MIN_FREE_GB:
        return Check("disk", FAIL, f"{free:.1f} GB free under {STATE_DIR}", f"free at least {MIN_FREE_GB:.0f} GB")
    return Check("disk", OK, f"{free:.0f} GB free under {STATE_DIR}")


def _config(config_dir: Path | None) -> Check:
    try:
        config = load_config(config_dir)
    except Exception as exc:
        return Check("config", FAIL, str(exc), "fix the file and line named; python -m agent check --config DIR")
    return Check("config", OK, f"{config.directory}: {len(config.tasks)} task(s)")


def run_doctor(config_dir: Path | None = None, out=sys.stdout, with_models: bool = True) -> int:
    steps: list[Callable[[], Check | list[Check]]] = [_cpu, lambda: _config(config_dir)]
    if with_models:
        steps.append(_models)
    steps += [_asterisk, _sandbox, _database, _disk]
    failed = 0
    for step in steps:
        result = step()
        for check in result if isinstance(result, list) else [result]:
            failed += check.status == FAIL
            fix = f"\n{'':14}fix: {check.fix}" if check.fix and check.status != OK else ""
            print(f"{check.status:>4}  {check.name:<8} {check.detail}{fix}", file=out)
    print("ready for calls" if not failed else f"{failed} check(s) failed", file=out)
    return 1 if failed else 0
