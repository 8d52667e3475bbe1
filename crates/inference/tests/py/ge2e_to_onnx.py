"""Convert Resemblyzer's GE2E speaker encoder (PyPI resemblyzer 0.1.4, Apache-2.0,
`resemblyzer/pretrained.pt`) to ONNX with numpy + onnx only: no torch, at conversion or run time.

  model.onnx   mels f32 [batch, frames, 40] -> embedding f32 [batch, 256]

The network is Resemblyzer's VoiceEncoder: a 3-layer LSTM (40 -> 256 -> 256 -> 256, batch
first), the last layer's final hidden state -> Linear 256x256 -> ReLU -> L2 normalisation. Its
input is a 40-channel mel *power* spectrogram (not log: Resemblyzer's `wav_to_mel_spectrogram`),
16 kHz, 25 ms window (n_fft 400), 10 ms hop, librosa's Slaney mel filters; an utterance is cut
into partials of 160 frames (1.6 s) at 1.3 partials per second (about 50 % overlap), whose
embeddings are averaged and re-normalised (`embed_utterance`). That front end is reimplemented
here in numpy (`embed_utterance` below) as the reference the Rust front end
(barnabee-inference `speaker.rs`) is tested against. It keeps Resemblyzer's volume
normalisation to -30 dBFS (increase only) and leaves out its webrtcvad silence trimming
(`preprocess_wav`), as the Rust one does: the voice daemon hands over VAD-cut utterances.

`mel_power` was checked once against librosa 0.11.0 itself (what `pip install resemblyzer`
resolves to today; librosa is not a test dependency): `librosa.feature.melspectrogram` with
Resemblyzer's arguments agrees within a relative 1.4e-7 on espeak-ng speech and noise, and
the Slaney filters within 7e-10.

`pretrained.pt` is a legacy (pre-1.6, not zip) torch serialisation: pickles for the magic
number, protocol, system info and the checkpoint, whose tensors point at storages by key,
then the storages' raw bytes in key order. `load_legacy_torch` reads it with `pickle` alone.

`--check` compares the ONNX graph run by onnxruntime with an independent numpy implementation
of the same network with PyTorch's LSTM semantics (gate order i, f, g, o; two biases),
computed in float64, on random mels and on the partials of espeak-ng speech; it prints the
max |diff| per input, writes OUT_DIR/conversion-check.json and exits 1 above TOLERANCE.
Resemblyzer's own torch forward is not run: torch is not installed here (and the package's
import pulls torch, librosa and webrtcvad), so the comparison is with this reimplementation
of its `forward`.

Usage:
  ge2e_to_onnx.py PRETRAINED_PT OUT_DIR [--check]
  ge2e_to_onnx.py embed MODEL_ONNX SAMPLES_F32 MELS_OUT EMBEDDING_OUT
      (the numpy front end on raw little-endian f32 16 kHz samples: writes the partials'
      mels [partials, 160, 40] and the utterance embedding [256] as raw f32, for the Rust test)
"""
import collections
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import wave

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HIDDEN, LAYERS, N_MELS, EMBEDDING = 256, 3, 40, 256
RATE, N_FFT, HOP, PARTIAL_FRAMES = 16000, 400, 160, 160
TOLERANCE = 1e-4
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C

# ---------------------------------------------------------------- legacy torch checkpoint

_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
           "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
           "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


class _StorageClass:
    def __init__(self, name):
        self.dtype = np.dtype(_DTYPES[name])


class _Storage:
    def __init__(self, dtype, numel):
        self.dtype, self.numel, self.array = dtype, numel, None


class _Tensor:
    """A tensor before its storage's bytes are read: resolved to numpy at the end."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self):
        a = self.storage.array
        if not self.size:
            return a[self.offset].copy()
        idx = self.offset + sum(np.ix_(*[np.arange(n) * s for n, s in zip(self.size, self.stride)]))
        return a[idx].copy()


def _rebuild_tensor(storage, offset, size, stride, *_):
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(data, *_):
    return data


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages

    def find_class(self, module, name):
        if (module, name) in (("torch._utils", "_rebuild_tensor_v2"), ("torch._utils", "_rebuild_tensor")):
            return _rebuild_tensor
        if (module, name) == ("torch._utils", "_rebuild_parameter"):
            return _rebuild_parameter
        if module == "torch" and name in _DTYPES:
            return _StorageClass(name)
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module.startswith("torch"):
            # nothing else of torch may be needed: refuse rather than import it
            raise pickle.UnpicklingError(f"unexpected torch object {module}.{name} in the checkpoint")
        return super().find_class(module, name)

    def persistent_load(self, pid):
        kind, cls, key, _location, numel, view = pid
        if kind != "storage" or view is not None:
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        return self.storages.setdefault(key, _Storage(cls.dtype, numel))


def load_legacy_torch(path):
    storages = {}
    with open(path, "rb") as f:
        if pickle.load(f) != LEGACY_MAGIC:
            raise SystemExit(f"{path}: not a legacy torch file (magic number)")
        pickle.load(f)  # protocol version
        pickle.load(f)  # system info (endianness, type sizes)
        obj = _Unpickler(f, storages).load()
        for key in pickle.load(f):
            st = storages[key]
            (numel,) = struct.unpack("<q", f.read(8))
            data = f.read(numel * st.dtype.itemsize)
            if numel != st.numel or len(data) != numel * st.dtype.itemsize:
                raise SystemExit(f"{path}: storage {key} is truncated")
            st.array = np.frombuffer(data, dtype=st.dtype)

    def resolve(o):
        if isinstance(o, _Tensor):
            return o.array()
        if isinstance(o, dict):
            return type(o)((k, resolve(v)) for k, v in o.items())
        if isinstance(o, (list, tuple)):
            return type(o)(resolve(v) for v in o)
        return o

    return resolve(obj)


def weights(pt_path):
    sd = load_legacy_torch(pt_path)["model_state"]
    want = {f"lstm.{w}_{k}_l{layer}" for layer in range(LAYERS) for w in ("weight", "bias") for k in ("ih", "hh")}
    want |= {"linear.weight", "linear.bias"}
    missing = want - set(sd)
    if missing:
        raise SystemExit(f"{pt_path}: model_state lacks {sorted(missing)}")
    return {k: np.asarray(sd[k], np.float32) for k in want}


# ---------------------------------------------------------------- ONNX graph


def _torch_to_onnx_gates(w):
    # PyTorch stacks the gates i, f, g(cell), o; ONNX LSTM wants i, o, f, c
    i, f, g, o = np.split(w, 4, axis=0)
    return np.concatenate([i, o, f, g], axis=0)


def build(sd):
    inits, nodes = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    const("axis0", np.array([0], np.int64))
    const("axis1", np.array([1], np.int64))
    # [batch, frames, 40] -> [frames, batch, 40], ONNX LSTM's default layout
    nodes.append(helper.make_node("Transpose", ["mels"], ["seq0"], perm=[1, 0, 2]))
    x = "seq0"
    for layer in range(LAYERS):
        w = const(f"lstm{layer}.W", _torch_to_onnx_gates(sd[f"lstm.weight_ih_l{layer}"])[None])
        r = const(f"lstm{layer}.R", _torch_to_onnx_gates(sd[f"lstm.weight_hh_l{layer}"])[None])
        b = const(f"lstm{layer}.B", np.concatenate([_torch_to_onnx_gates(sd[f"lstm.bias_ih_l{layer}"]),
                                                    _torch_to_onnx_gates(sd[f"lstm.bias_hh_l{layer}"])])[None])
        y, y_h = f"lstm{layer}.Y", f"lstm{layer}.Y_h"
        nodes.append(helper.make_node("LSTM", [x, w, r, b], [y, y_h], hidden_size=HIDDEN))
        x = f"seq{layer + 1}"
        nodes.append(helper.make_node("Squeeze", [y, "axis1"], [x]))  # [T, 1, B, H] -> [T, B, H]
    nodes.append(helper.make_node("Squeeze", [f"lstm{LAYERS - 1}.Y_h", "axis0"], ["hidden"]))  # [B, H]
    const("linear.W", sd["linear.weight"].T)
    const("linear.b", sd["linear.bias"])
    nodes += [
        helper.make_node("MatMul", ["hidden", "linear.W"], ["linear"]),
        helper.make_node("Add", ["linear", "linear.b"], ["linear_b"]),
        helper.make_node("Relu", ["linear_b"], ["raw"]),
        helper.make_node("LpNormalization", ["raw"], ["embedding"], axis=1, p=2),
    ]
    graph = helper.make_graph(
        nodes, "ge2e_resemblyzer",
        [helper.make_tensor_value_info("mels", TensorProto.FLOAT, ["batch", "frames", N_MELS])],
        [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["batch", EMBEDDING])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="barnabee ge2e_to_onnx.py")
    model.ir_version = 8
    for k, v in {"source": "PyPI resemblyzer 0.1.4, resemblyzer/pretrained.pt (Apache-2.0)",
                 "frontend": "mel power (not log), 16 kHz, n_fft 400, hop 160, 40 Slaney mels; "
                             "partials of 160 frames at 1.3/s; mean of partial embeddings, L2"}.items():
        model.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(model)
    return model


# ---------------------------------------------------------------- numpy reference


def reference_forward(sd, mels):
    """The VoiceEncoder's forward in float64 with PyTorch's LSTM equations."""
    sd = {k: v.astype(np.float64) for k, v in sd.items()}
    x = mels.astype(np.float64)  # [B, T, 40]
    batch, frames = x.shape[:2]
    for layer in range(LAYERS):
        w_ih, w_hh = sd[f"lstm.weight_ih_l{layer}"], sd[f"lstm.weight_hh_l{layer}"]
        bias = sd[f"lstm.bias_ih_l{layer}"] + sd[f"lstm.bias_hh_l{layer}"]
        h = np.zeros((batch, HIDDEN))
        c = np.zeros((batch, HIDDEN))
        out = np.empty((batch, frames, HIDDEN))
        for t in range(frames):
            z = x[:, t] @ w_ih.T + h @ w_hh.T + bias
            i = 1 / (1 + np.exp(-z[:, :HIDDEN]))
            f = 1 / (1 + np.exp(-z[:, HIDDEN:2 * HIDDEN]))
            g = np.tanh(z[:, 2 * HIDDEN:3 * HIDDEN])
            o = 1 / (1 + np.exp(-z[:, 3 * HIDDEN:]))
            c = f * c + i * g
            h = o * np.tanh(c)
            out[:, t] = h
        x = out
    raw = np.maximum(h @ sd["linear.weight"].T + sd["linear.bias"], 0)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


# ---------------------------------------------------------------- Resemblyzer's front end


def slaney_mel_filters():
    """librosa.filters.mel(sr=16000, n_fft=400, n_mels=40) (htk=False, norm='slaney')."""
    f_sp, min_log_hz = 200.0 / 3, 1000.0
    min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0

    def hz_to_mel(f):
        return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
                        f / f_sp)

    def mel_to_hz(m):
        return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)

    mel_f = mel_to_hz(np.linspace(hz_to_mel(np.array(0.0)), hz_to_mel(np.array(RATE / 2)), N_MELS + 2))
    fft_f = np.arange(N_FFT // 2 + 1) * RATE / N_FFT
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    w = np.maximum(0, np.minimum(lower, upper))
    return w * (2.0 / (mel_f[2:] - mel_f[:-2]))[:, None]


def mel_power(wav):
    """librosa.feature.melspectrogram(y, sr=16000, n_fft=400, hop_length=160, n_mels=40):
    periodic Hann, centred with zero padding (librosa >= 0.10's pad_mode), power 2 -> [frames, 40]."""
    y = np.pad(wav.astype(np.float64), N_FFT // 2)
    frames = 1 + (len(y) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(frames)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)
    power = np.abs(np.fft.rfft(y[idx] * window, axis=1)) ** 2
    return (power @ slaney_mel_filters().T).astype(np.float32)


def normalize_volume(wav, target_dbfs=-30.0):
    """Resemblyzer's normalize_volume(increase_only=True); silence is left as it is."""
    rms = np.sqrt(np.mean((wav.astype(np.float64) * 32767) ** 2))
    if rms == 0:
        return wav
    change = target_dbfs - 20 * np.log10(rms / 32767)
    return (wav * 10 ** (change / 20)).astype(np.float32) if change > 0 else wav


def partial_slices(n_samples, rate=1.3, min_coverage=0.75):
    """Resemblyzer's VoiceEncoder.compute_partial_slices: start frames of the partials."""
    n_frames = int(np.ceil((n_samples + 1) / HOP))
    step = int(np.round((RATE / rate) / HOP))
    starts = list(range(0, max(1, n_frames - PARTIAL_FRAMES + step + 1), step))
    coverage = (n_samples - starts[-1] * HOP) / (PARTIAL_FRAMES * HOP)
    if coverage < min_coverage and len(starts) > 1:
        starts.pop()
    return starts


def partial_mels(wav):
    wav = normalize_volume(np.asarray(wav, np.float32))
    starts = partial_slices(len(wav))
    need = (starts[-1] + PARTIAL_FRAMES) * HOP
    if need >= len(wav):
        wav = np.pad(wav, (0, need - len(wav)))
    mel = mel_power(wav)
    return np.stack([mel[s:s + PARTIAL_FRAMES] for s in starts])


def embed_utterance(session, wav):
    mels = partial_mels(wav)
    partials = session.run(["embedding"], {"mels": mels})[0]
    e = partials.mean(axis=0)
    return mels, (e / np.linalg.norm(e)).astype(np.float32)


# ---------------------------------------------------------------- check


def espeak(text, voice):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "s.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-w", path, text], check=True)
        with wave.open(path) as w:
            rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), np.int16)
    x = pcm.astype(np.float64) / 32768
    # espeak-ng speaks at 22,050 Hz: linear interpolation to 16 kHz is enough for a check input
    t = np.arange(int(len(x) * RATE / rate)) * rate / RATE
    return np.interp(t, np.arange(len(x)), x).astype(np.float32)


def session(path):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])


def check(sd, out_dir):
    import onnxruntime as ort

    s = session(os.path.join(out_dir, "model.onnx"))
    rng = np.random.default_rng(16)
    inputs = [
        ("random mels, 3 x 160 frames", (rng.standard_normal((3, 160, N_MELS)) ** 2).astype(np.float32)),
        ("random mels, 1 x 37 frames", (rng.standard_normal((1, 37, N_MELS)) ** 2).astype(np.float32)),
    ]
    for text, voice in (("please turn on the kitchen lights and set the thermostat to seventy degrees", "en-us"), ("set a timer for ten minutes", "en-us+f3")):
        inputs.append((f"espeak-ng {voice} {text!r} partials", partial_mels(espeak(text, voice))))
    report, ok = {"onnxruntime": ort.__version__, "tolerance": TOLERANCE, "inputs": []}, True
    for name, mels in inputs:
        ours = s.run(["embedding"], {"mels": mels})[0]
        ref = reference_forward(sd, mels)
        diff = float(np.abs(ours - ref).max())
        ok &= diff < TOLERANCE
        report["inputs"].append({"input": name, "shape": list(mels.shape), "max_abs_diff": diff})
        print(f"  {name} {list(mels.shape)}: max |onnx - numpy| {diff:.2e}")
    with open(os.path.join(out_dir, "conversion-check.json"), "w") as f:
        json.dump(report, f, indent=1)
    return ok


def main():
    args = sys.argv[1:]
    if args[:1] == ["embed"] and len(args) == 5:
        _, model, samples, mels_out, emb_out = args
        wav = np.fromfile(samples, dtype="<f4")
        mels, e = embed_utterance(session(model), wav)
        mels.astype("<f4").tofile(mels_out)
        e.astype("<f4").tofile(emb_out)
        return
    paths = [a for a in args if not a.startswith("--")]
    if len(paths) != 2:
        raise SystemExit(__doc__)
    pt, out = paths
    sd = weights(pt)
    os.makedirs(out, exist_ok=True)
    onnx.save(build(sd), os.path.join(out, "model.onnx"))
    print(f"converted {pt} -> {out}/model.onnx "
          f"({sum(v.size for v in sd.values()):,} parameters, {LAYERS}x{HIDDEN} LSTM)")
    if "--check" in args and not check(sd, out):
        raise SystemExit(f"conversion check FAILED: ONNX and numpy differ by more than {TOLERANCE}")


if __name__ == "__main__":
    main()
