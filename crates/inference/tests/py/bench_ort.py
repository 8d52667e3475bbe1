"""The Python onnxruntime side of `bench`: the same models, the same inputs, one thread.
Usage: bench_ort.py SPEC.json  (silero, mel, emb, head, minilm paths; token ids; counts)
Prints JSON: per-call milliseconds for each stage and text-embedding sentences per second."""
import json
import sys
import time

import numpy as np
import onnxruntime as ort

spec = json.load(open(sys.argv[1]))
so = ort.SessionOptions()
so.intra_op_num_threads = 1
so.inter_op_num_threads = 1
P = ["CPUExecutionProvider"]
out = {"onnxruntime": ort.__version__}

s = ort.InferenceSession(spec["silero"], so, providers=P)
rng = np.random.default_rng(1)
x = (rng.standard_normal(512 * spec["vad_frames"]) * 0.05).astype(np.float32)
state = np.zeros((2, 1, 128), np.float32)
ctx = np.zeros(64, np.float32)
sr = np.array(16000, dtype=np.int64)
t = time.perf_counter()
for i in range(spec["vad_frames"]):
    w = x[i * 512:(i + 1) * 512]
    p, state = s.run(None, {"input": np.concatenate([ctx, w])[None], "state": state, "sr": sr})
    ctx = w[-64:]
out["vad_ms_per_frame"] = 1e3 * (time.perf_counter() - t) / spec["vad_frames"]

mel = ort.InferenceSession(spec["mel"], so, providers=P)
emb = ort.InferenceSession(spec["emb"], so, providers=P)
head = ort.InferenceSession(spec["head"], so, providers=P)
hin = head.get_inputs()[0].name
ein = emb.get_inputs()[0].name
audio = (rng.standard_normal(1280 * spec["wake_steps"]) * 1000).astype(np.float32)
tail = np.zeros(480, np.float32)
mels = np.ones((76, 32), np.float32)
embs = np.zeros((16, 96), np.float32)
t = time.perf_counter()
for i in range(spec["wake_steps"]):
    step = audio[i * 1280:(i + 1) * 1280]
    m = mel.run(None, {"input": np.concatenate([tail, step])[None]})[0].squeeze() / 10 + 2
    tail = step[-480:]
    mels = np.vstack([mels, m])[-76:]
    e = emb.run(None, {ein: mels[None, :, :, None].astype(np.float32)})[0].squeeze()
    embs = np.vstack([embs, e])[-16:]
    head.run(None, {hin: embs[None].astype(np.float32)})
out["wake_ms_per_step"] = 1e3 * (time.perf_counter() - t) / spec["wake_steps"]

if spec.get("minilm"):
    tm = ort.InferenceSession(spec["minilm"], so, providers=P)
    ids = spec["token_ids"]
    tm.run(None, {"input_ids": np.array([ids[0]], np.int64), "attention_mask": np.ones((1, len(ids[0])), np.int64), "token_type_ids": np.zeros((1, len(ids[0])), np.int64)})
    t = time.perf_counter()
    n = 0
    for _ in range(spec["text_rounds"]):
        for seq in ids:
            a = np.array([seq], np.int64)
            h = tm.run(["last_hidden_state"], {"input_ids": a, "attention_mask": np.ones_like(a), "token_type_ids": np.zeros_like(a)})[0]
            v = h[0].mean(axis=0)
            v /= np.linalg.norm(v)
            n += 1
    out["text_per_s"] = n / (time.perf_counter() - t)
print(json.dumps(out))
