"""The agent's AMI link (panoramisk): find each call's channel, hand calls back.

The dialplan announces every agent call with UserEvent(AgentCall) carrying the
AudioSocket UUID and the channel name. To hand a call back the agent sets
AGENT_ACTION (hangup | transfer) and AGENT_TRANSFER_TO on that channel, then
closes the AudioSocket; the dialplan routes the call from there.

The link is supervised: if Asterisk is down when the agent starts, or goes away
later (restart, crash, hang), the link retries with backoff for as long as the
agent runs and logs one line per change of state, not per attempt. A silent
Asterisk (the TCP connection open but no replies) is noticed by a ping that
must be answered. `state` tells the server how the link is doing:

  disabled   no AMI credentials on this box: never connects
  connecting the first attempt has not finished yet
  up         logged in; calls are announced and hand-backs work
  down       not reachable (or not answering); retrying
  refused    Asterisk refused the login; retrying (the credentials are re-read)
"""

from __future__ import annotations

import asyncio
import logging
import time

from panoramisk import Manager

from agent.config import BoxSettings, load_box_settings

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5.0
BACKOFF_START_S = 0.5
BACKOFF_MAX_S = 10.0
PING_INTERVAL_S = 5.0
PING_TIMEOUT_S = 5.0
ACTION_TIMEOUT_S = 3.0
# an announced call that never connected is forgotten after this long
ANNOUNCED_TTL_S = 600.0
MAX_ANNOUNCED = 10_000
# right after (re)connecting, a call announced while the link was down may still connect; 0: off
# (the window is milliseconds, and such a call goes to a human, never to dead air)
GRACE_AFTER_UP_S = 0.0


class _SupervisedManager(Manager):
    """panoramisk's Manager without its own reconnect loop: AmiLink decides when to retry."""

    def __init__(self, on_lost, **config) -> None:
        super().__init__(**config)
        self._on_lost = on_lost

    def connection_made(self, f) -> None:
        if f.cancelled() or f.exception() is not None:
            return  # AmiLink sees the failed connect and retries with its backoff
        super().connection_made(f)

    def connection_lost(self, exc) -> None:
        self._connected = False
        self.authenticated = False
        if self.pinger:
            self.pinger.cancel()
            self.pinger = None
        self._on_lost(self)

    def ping(self) -> None:  # our own health check pings with a timeout instead
        self.pinger = None


class AmiLink:
    def __init__(self, box: BoxSettings) -> None:
        self._box = box
        self._manager: Manager | None = None
        self._channels: dict[str, dict[str, str]] = {}
        self._announced_at: dict[str, float] = {}
        self._claimed: set[str] = set()
        self._waiters: dict[str, asyncio.Event] = {}
        self._state = "connecting" if box.ami_secret else "disabled"
        self._state_since = time.monotonic()
        self._up_since: float | None = None
        self._supervisor: asyncio.Task | None = None
        self._first_attempt = asyncio.Event()
        self.connects = 0  # successful logins so far (a reconnect makes it > 1)

    # ---- state ------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def up(self) -> bool:
        return self._state == "up"

    def describe(self) -> str:
        return f"{self._state} for {time.monotonic() - self._state_since:.0f}s"

    def just_came_up(self) -> bool:
        """True for a moment after (re)connecting: a call announced while the link was down may still arrive."""
        return self._up_since is not None and time.monotonic() - self._up_since < GRACE_AFTER_UP_S

    def _set_state(self, state: str, detail: str = "") -> None:
        if state == self._state:
            return
        previous, was = self._state, time.monotonic() - self._state_since
        self._state, self._state_since = state, time.monotonic()
        where = f"127.0.0.1:{self._box.ami_port}"
        if state == "up":
            self._up_since = time.monotonic()
            if previous in ("down", "refused"):
                log.warning("AMI up again on %s after %.0f s %s; caller ID, briefing and hand-back work", where, was, previous)
            else:
                log.info("AMI connected on %s", where)
        elif state == "down":
            self._up_since = None
            if previous == "up":
                log.warning("AMI lost (%s); retrying in the background. Until it is back calls have no caller ID "
                            "and hand back by the dialplan's default route", detail)  # fmt: skip
            else:
                log.warning("AMI not reachable on %s (%s); retrying in the background. Until it is up calls have no "
                            "caller ID and hand back by the dialplan's default route", where, detail)  # fmt: skip
        elif state == "refused":
            self._up_since = None
            log.error("AMI login refused on %s (%s); check AMI_USER/AMI_SECRET in asterisk.env; retrying", where, detail)

    # ---- connection -------------------------------------------------------

    async def connect(self, wait: float = 3.0) -> bool:
        """Start the supervised link; wait up to `wait` s for the first attempt. True if up."""
        if not self._box.ami_secret:
            log.warning("AMI credentials missing (/opt/phone-agent/asterisk.env, or $PHONE_AGENT_HOME); calls hand back to the dialplan's default route")
            return False
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise(), name="ami-link")
        try:
            await asyncio.wait_for(self._first_attempt.wait(), wait)
        except TimeoutError:
            pass
        return self.up

    async def _supervise(self) -> None:
        backoff = BACKOFF_START_S
        while True:
            try:
                detail = await self._attempt()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # never let the supervisor die
                detail = f"{type(exc).__name__}: {exc}"
            self._first_attempt.set()
            if detail is None:  # we were up; the connection has now ended
                backoff = BACKOFF_START_S
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    async def _attempt(self) -> str | None:
        """One connection: None once it was up and has ended, else why it failed."""
        lost = asyncio.Event()
        manager = _SupervisedManager(
            lambda _manager: lost.set(),
            host="127.0.0.1",
            port=self._box.ami_port,
            username=self._box.ami_user,
            secret=self._box.ami_secret,
            ping_delay=3600,
            reconnect_timeout=3600,
            log=logging.getLogger("panoramisk"),
        )
        manager.register_event("UserEvent", self._on_user_event)
        try:
            try:
                await asyncio.wait_for(manager.connect(), timeout=CONNECT_TIMEOUT_S)
                for _ in range(100):  # connection_made (which sends the login) runs as a callback
                    if manager.protocol is not None:
                        break
                    await asyncio.sleep(0.01)
                login = manager.authenticated_future
                if login is not None:
                    await asyncio.wait_for(asyncio.shield(login), timeout=CONNECT_TIMEOUT_S)
                    await asyncio.sleep(0)  # let panoramisk's login callback run first
            except (TimeoutError, OSError) as exc:
                self._set_state("down", str(exc) or "no answer to the login")
                return str(exc) or "timeout"
            if not manager.authenticated:
                if lost.is_set() and login is None:
                    self._set_state("down", "connection closed during login")
                    return "closed"
                self._set_state("refused", "authentication failed")
                self._box = _reread(self._box)
                return "refused"
            self._manager = manager
            self.connects += 1
            self._set_state("up")
            self._first_attempt.set()
            detail = await self._watch(manager, lost)
            self._set_state("down", detail)
            return None
        finally:
            if self._manager is manager:
                self._manager = None
            manager.close()

    async def _watch(self, manager: Manager, lost: asyncio.Event) -> str:
        """Until the connection ends or Asterisk stops answering pings: why it ended."""
        while True:
            try:
                await asyncio.wait_for(lost.wait(), PING_INTERVAL_S)
                return "connection closed"
            except TimeoutError:
                pass
            try:
                await asyncio.wait_for(manager.send_action({"Action": "Ping"}), PING_TIMEOUT_S)
            except TimeoutError:
                return f"no answer to a ping within {PING_TIMEOUT_S:.0f} s"
            except Exception as exc:
                return f"ping failed: {type(exc).__name__}"

    # ---- calls ------------------------------------------------------------

    def _on_user_event(self, _manager, event) -> None:
        if event.get("UserEvent") != "AgentCall":
            return
        call_uuid = str(event.get("AgentUUID", "")).lower()
        if not call_uuid:
            return
        self._prune()
        self._channels[call_uuid] = {
            "channel": event.get("Channel", ""),
            "uniqueid": event.get("Uniqueid", ""),
            "linkedid": event.get("Linkedid", ""),
            "caller_id": event.get("CallerIDNum", "") if event.get("CallerIDNum") != "<unknown>" else "",
        }
        self._announced_at[call_uuid] = time.monotonic()
        if call_uuid in self._waiters:
            self._waiters[call_uuid].set()

    def _prune(self) -> None:
        """Announced calls that never connected are forgotten (bounded memory)."""
        now = time.monotonic()
        stale = [u for u, at in self._announced_at.items() if u not in self._claimed and now - at > ANNOUNCED_TTL_S]
        while len(self._announced_at) - len(stale) >= MAX_ANNOUNCED:
            oldest = min((u for u in self._announced_at if u not in self._claimed and u not in stale), default=None)
            if oldest is None:
                break
            stale.append(oldest)
        for call_uuid in stale:
            self._announced_at.pop(call_uuid, None)
            self._channels.pop(call_uuid, None)

    async def announced(self, call_uuid: str, timeout: float = 1.0) -> bool | None:
        """Did Asterisk announce this call? None when the link is not up (it cannot tell).

        Waits up to `timeout` for the event, since it travels over another connection
        than the call's audio. A call that was announced is claimed: kept until forget().
        """
        call_uuid = call_uuid.lower()
        if call_uuid not in self._channels:
            if not self.up or self.just_came_up():
                return None
            if timeout > 0:
                await self.channel_info(call_uuid, timeout)
        if call_uuid in self._channels:
            self._claimed.add(call_uuid)
            return True
        return None if not self.up else False

    async def channel_info(self, call_uuid: str, timeout: float = 1.0) -> dict[str, str] | None:
        call_uuid = call_uuid.lower()
        if call_uuid not in self._channels and self._manager is not None:
            event = self._waiters.setdefault(call_uuid, asyncio.Event())
            try:
                await asyncio.wait_for(event.wait(), timeout)
            except TimeoutError:
                pass
            finally:
                self._waiters.pop(call_uuid, None)
        return self._channels.get(call_uuid)

    async def set_vars(self, call_uuid: str, variables: dict[str, str]) -> bool:
        info = await self.channel_info(call_uuid)
        manager = self._manager
        if manager is None or not info:
            if not info:
                log.debug("AMI %s: call not announced; hand-back by the dialplan's default route", self._state)
            return False
        for name, value in variables.items():
            try:
                reply = await asyncio.wait_for(
                    manager.send_action(
                        {"Action": "Setvar", "Channel": info["channel"], "Variable": name, "Value": value}
                    ),
                    ACTION_TIMEOUT_S,
                )
            except (TimeoutError, OSError, AttributeError) as exc:
                log.warning("AMI Setvar %s got no answer (%s)", name, type(exc).__name__)
                return False
            if str(reply.get("Response")) != "Success":
                log.warning("AMI Setvar %s failed: %s", name, reply.get("Message"))
                return False
        return True

    def forget(self, call_uuid: str) -> None:
        call_uuid = call_uuid.lower()
        self._channels.pop(call_uuid, None)
        self._announced_at.pop(call_uuid, None)
        self._claimed.discard(call_uuid)

    def close(self) -> None:
        if self._supervisor is not None:
            self._supervisor.cancel()
            self._supervisor = None
        if self._manager is not None:
            self._manager.close()
            self._manager = None


def _reread(box: BoxSettings) -> BoxSettings:
    """Asterisk refused the login: the credentials may have been rendered anew; read them again."""
    try:
        fresh = load_box_settings()
    except Exception:  # a half-written file: keep the old settings, try again later
        return box
    return fresh if fresh.ami_secret else box
