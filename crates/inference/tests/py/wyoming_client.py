"""Drive barnabee-inference's Wyoming server with the PyPI `wyoming` package's AsyncTcpClient,
the way Home Assistant does (one connection per request, 1 s describe timeout, 320-byte audio
chunks, streaming TTS read until synthesize-stopped). Prints one JSON object with what came
back; the Rust test asserts on it.

Usage: wyoming_client.py PORT COMMAND_WAV WAKE_WAV NEGATIVE_WAV
"""
import asyncio
import json
import sys
import wave

import wyoming
from wyoming.asr import Transcribe, Transcript
from wyoming.audio import AudioChunk, AudioStart, AudioStop
from wyoming.client import AsyncTcpClient
from wyoming.error import Error
from wyoming.info import Describe, Info
from wyoming.tts import Synthesize
from wyoming.wake import Detect, Detection, NotDetected

try:
    from wyoming.tts import SynthesizeChunk, SynthesizeStart, SynthesizeStop, SynthesizeStopped
except ImportError:  # before 1.7
    SynthesizeStart = None

PORT = int(sys.argv[1])
VERSION = getattr(wyoming, "__version__", None)
if VERSION is None:
    from importlib.metadata import version
    VERSION = version("wyoming")


def pcm(path):
    with wave.open(path) as w:
        assert w.getframerate() == 16000 and w.getsampwidth() == 2 and w.getnchannels() == 1
        return w.readframes(w.getnframes())


async def read(client, timeout=30):
    ev = await asyncio.wait_for(client.read_event(), timeout)
    assert ev is not None, "server closed the connection"
    return ev


async def send_audio(client, audio):
    await client.write_event(AudioStart(rate=16000, width=2, channels=1).event())
    for i in range(0, len(audio), 320):
        await client.write_event(AudioChunk(rate=16000, width=2, channels=1, audio=audio[i:i + 320]).event())
    await client.write_event(AudioStop().event())


async def main():
    out = {"version": VERSION}
    async with AsyncTcpClient("127.0.0.1", PORT) as c:
        await c.write_event(Describe().event())
        ev = await read(c, timeout=1)
        info = Info.from_event(ev)
        out["asr"] = [m.name for p in info.asr for m in p.models]
        out["tts"] = [v.name for p in info.tts for v in p.voices]
        out["wake"] = [m.name for p in info.wake for m in p.models]
        out["attribution"] = info.asr[0].attribution.name if info.asr else None
        out["installed"] = all(p.installed for p in info.asr + info.tts + info.wake)
        out["languages"] = info.asr[0].models[0].languages if info.asr else None
        out["tts_streaming"] = getattr(info.tts[0], "supports_synthesize_streaming", None) if info.tts else None

    async with AsyncTcpClient("127.0.0.1", PORT) as c:
        await c.write_event(Transcribe(name=out["asr"][0], language="en").event())
        await send_audio(c, pcm(sys.argv[2]))
        others = []
        while True:
            ev = await read(c)
            if Transcript.is_type(ev.type):
                out["transcript"] = Transcript.from_event(ev).text
                break
            others.append(ev.type)
        out["transcribe_other_events"] = others

    async with AsyncTcpClient("127.0.0.1", PORT) as c:
        await c.write_event(Synthesize(text="Hello there. How are you?").event())
        chunks, nbytes, rate = 0, 0, None
        ev = await read(c)
        assert AudioStart.is_type(ev.type), ev.type
        rate = AudioStart.from_event(ev).rate
        while True:
            ev = await read(c)
            if AudioChunk.is_type(ev.type):
                chunks += 1
                nbytes += len(AudioChunk.from_event(ev).audio)
            elif AudioStop.is_type(ev.type):
                break
            else:
                raise AssertionError(f"unexpected {ev.type}")
        out["synthesize"] = {"rate": rate, "chunks": chunks, "bytes": nbytes}

    if SynthesizeStart is not None:
        async with AsyncTcpClient("127.0.0.1", PORT) as c:
            await c.write_event(SynthesizeStart().event())
            for part in ["Hello there. How", " are you? I am", " fine"]:
                await c.write_event(SynthesizeChunk(text=part).event())
            await c.write_event(Synthesize(text="Hello there. How are you? I am fine").event())
            await c.write_event(SynthesizeStop().event())
            starts, nbytes = 0, 0
            while True:
                ev = await read(c)
                if AudioStart.is_type(ev.type):
                    starts += 1
                elif AudioChunk.is_type(ev.type):
                    nbytes += len(AudioChunk.from_event(ev).audio)
                elif SynthesizeStopped.is_type(ev.type):
                    break
            out["streaming"] = {"groups": starts, "bytes": nbytes}

    for key, wav in [("detect_positive", sys.argv[3]), ("detect_negative", sys.argv[4])]:
        async with AsyncTcpClient("127.0.0.1", PORT) as c:
            await c.write_event(Detect(names=["hey_jarvis"]).event())
            await send_audio(c, pcm(wav))
            while True:
                ev = await read(c)
                if Detection.is_type(ev.type):
                    out[key] = Detection.from_event(ev).name
                    break
                if NotDetected.is_type(ev.type):
                    out[key] = "not-detected"
                    break

    async with AsyncTcpClient("127.0.0.1", PORT) as c:
        await c.write_event(Synthesize(text="   ").event())
        ev = await read(c)
        out["empty_text"] = Error.from_event(ev).text if Error.is_type(ev.type) else ev.type

    print(json.dumps(out))


asyncio.run(main())
