"""The agent's AMI link (panoramisk): find each call's channel, hand calls back.

The dialplan announces every agent call with UserEvent(AgentCall) carrying the
AudioSocket UUID and the channel name. To hand a call back the agent sets
AGENT_ACTION (hangup | transfer) and AGENT_TRANSFER_TO on that channel, then
closes the AudioSocket; the dialplan routes the call from there.
"""

from __future__ import annotations

import asyncio
import logging

from panoramisk import Manager

from agent.config import BoxSettings

log = logging.getLogger(__name__)


class AmiLink:
    def __init__(self, box: BoxSettings) -> None:
        self._box = box
        self._manager: Manager | None = None
        self._channels: dict[str, dict[str, str]] = {}
        self._waiters: dict[str, asyncio.Event] = {}

    async def connect(self) -> bool:
        if not self._box.ami_secret:
            log.warning("AMI credentials missing (/opt/phone-agent/asterisk.env, or $PHONE_AGENT_HOME); calls hand back to the dialplan's default route")
            return False
        manager = Manager(
            host="127.0.0.1",
            port=self._box.ami_port,
            username=self._box.ami_user,
            secret=self._box.ami_secret,
            ping_delay=10,
            reconnect_timeout=2,
        )
        manager.register_event("UserEvent", self._on_user_event)
        try:
            await asyncio.wait_for(manager.connect(), timeout=5)
        except (TimeoutError, OSError) as exc:
            log.warning(
                "AMI not reachable on 127.0.0.1:%s (%s); hand-back uses the dialplan default", self._box.ami_port, exc
            )
            manager.close()
            return False
        self._manager = manager
        log.info("AMI connected on 127.0.0.1:%s", self._box.ami_port)
        return True

    def _on_user_event(self, _manager, event) -> None:
        if event.get("UserEvent") != "AgentCall":
            return
        call_uuid = str(event.get("AgentUUID", "")).lower()
        self._channels[call_uuid] = {
            "channel": event.get("Channel", ""),
            "uniqueid": event.get("Uniqueid", ""),
            "linkedid": event.get("Linkedid", ""),
            "caller_id": event.get("CallerIDNum", "") if event.get("CallerIDNum") != "<unknown>" else "",
        }
        if call_uuid in self._waiters:
            self._waiters[call_uuid].set()

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
        if self._manager is None or not info:
            return False
        for name, value in variables.items():
            reply = await self._manager.send_action(
                {"Action": "Setvar", "Channel": info["channel"], "Variable": name, "Value": value}
            )
            if str(reply.get("Response")) != "Success":
                log.warning("AMI Setvar %s failed: %s", name, reply.get("Message"))
                return False
        return True

    def forget(self, call_uuid: str) -> None:
        self._channels.pop(call_uuid.lower(), None)

    def close(self) -> None:
        if self._manager is not None:
            self._manager.close()
