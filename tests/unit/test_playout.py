"""Paced output: a paused playout sends silence and keeps its queue; resume goes on where it stopped."""

import asyncio

from agent.call.playout import FRAME, SILENCE_FRAME, Playout
from agent.protocol import audiosocket as proto


async def test_pause_sends_silence_and_resume_continues_where_it_stopped():
    sent: list[bytes] = []
    playout = Playout(lambda data: sent.append(proto.Decoder().feed(data)[0].pcm))
    speech = [bytes([n]) * FRAME for n in range(1, 11)]
    playout.enqueue(b"".join(speech))
    task = asyncio.create_task(playout.run())
    while len(sent) < 3:
        await asyncio.sleep(0.005)
    playout.pause()
    paused_at = len(sent)
    await asyncio.sleep(0.1)
    assert playout.speaking and all(frame == SILENCE_FRAME for frame in sent[paused_at + 1 :])
    playout.resume()
    await playout.drained()
    task.cancel()
    assert [frame for frame in sent if frame != SILENCE_FRAME] == speech  # nothing lost, nothing repeated


async def test_clear_drops_the_queue_and_unpauses():
    playout = Playout(lambda data: None)
    playout.enqueue(b"\x01" * FRAME * 5)
    playout.pause()
    assert playout.clear() == 5
    assert not playout.paused and not playout.speaking
