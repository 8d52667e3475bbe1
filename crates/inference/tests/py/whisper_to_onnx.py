"""Convert a CTranslate2 Whisper model (faster-whisper's `model.bin`, binary format 6) to the
ONNX layout a Hugging Face / optimum export gives operators, with numpy + onnx only (no torch,
no ctranslate2 for the conversion itself):

  encoder_model.onnx   input_features f32 [batch, n_mels, 3000] -> last_hidden_state f32 [batch, 1500, d]
  decoder_model.onnx   input_ids i64 [batch, T], encoder_hidden_states f32 [batch, 1500, d]
                       -> logits f32 [batch, T, vocab]
                       (optimum's decoder without past key values: every step recomputes the
                       prefix and the cross-attention K/V; no decoder_with_past_model.onnx)
  tokenizer.json       copied (GPT-2 byte-level BPE + Whisper's special tokens)
  generation_config.json, config.json   written the way transformers names the fields

Weights stay float32 in the graph (CTranslate2's float16 values widened exactly).

`--check` then proves the conversion against the original runtime (ctranslate2 from PyPI):
espeak-ng speaks the test commands, the numpy log-mel (whisper_mel.py) of each goes to both;
the encoder outputs must agree within 5e-3 (max |diff|, see ENCODER_TOLERANCE), and greedy decoding of our ONNX pair
(the same rules barnabee-inference applies) must give exactly CTranslate2's greedy tokens
(generate(beam_size=1), the same prompt and suppression). The figures are printed and written
to OUT_DIR/conversion-check.json; any mismatch exits 1.

Usage: whisper_to_onnx.py CT2_MODEL_DIR OUT_DIR [--check]
"""
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import wave

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import whisper_mel  # noqa: E402

# Max |diff| of the encoder output. Both run float32, but CTranslate2's kernels sum in another
# order: tiny.en shows 6e-5..6e-4, base (6 layers) up to 2e-3, with mean |x| about 0.6. A wrong
# operator is far above this (tanh-approximated GELU instead of erf: 0.14..0.29 on base).
ENCODER_TOLERANCE = 5e-3
CLIPS = [  # (text, espeak-ng voice)
    ("turn on the kitchen lights", "en-us"),
    ("what is the weather like tomorrow", "en-us"),
    ("set a timer for ten minutes", "en-us"),
    ("set a timer for ten minutes", "en-us+f3"),  # misheard, identically by both
]


# ---- CTranslate2 model.bin -------------------------------------------------------------------

def read_ct2(path):
    """CTranslate2 binary model (versions 5/6): header, named arrays, then name aliases."""
    dtypes = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
    data = open(path, "rb").read()
    off = 0

    def take(fmt):
        nonlocal off
        v = struct.unpack_from(fmt, data, off)
        off += struct.calcsize(fmt)
        return v[0]

    def string():
        nonlocal off
        n = take("<H")
        s = data[off:off + n].rstrip(b"\0").decode()
        off += n
        return s

    version = take("<I")
    if version < 5:
        raise SystemExit(f"{path}: CTranslate2 binary version {version} (expected 5 or 6)")
    spec, _revision, count = string(), take("<I"), take("<I")
    arrays = {}
    for _ in range(count):
        name = string()
        shape = [take("<I") for _ in range(take("<B"))]
        dt, nbytes = take("<B"), take("<I")
        raw = data[off:off + nbytes]
        off += nbytes
        if dt == 5:  # bfloat16
            a = (np.frombuffer(raw, np.uint16).astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(raw, dtypes[dt])
        arrays[name] = a.reshape(shape)
    if off < len(data):
        for _ in range(take("<I")):
            alias, target = string(), string()
            arrays[alias] = arrays[target]
    if spec != "WhisperSpec":
        raise SystemExit(f"{path}: a {spec}, not a WhisperSpec")
    return arrays


# ---- graph building ---------------------------------------------------------------------------

class Graph:
    def __init__(self, weights):
        self.w, self.nodes, self.inits, self.names, self.n = weights, [], [], {}, 0

    def fresh(self, op):
        self.n += 1
        return f"{op}_{self.n}"

    def op(self, op, inputs, **attrs):
        out = self.fresh(op)
        self.nodes.append(helper.make_node(op, inputs, [out], **attrs))
        return out

    def const(self, value, dtype=np.float32):
        name = self.fresh("const")
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def weight(self, key):
        if key not in self.names:
            name = key.replace("/", ".")
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(self.w[key], np.float32), name))
            self.names[key] = name
        return self.names[key]

    def weight_t(self, key):  # a Linear's [out, in] weight stored as [in, out] for MatMul
        k = key + "^T"
        if k not in self.names:
            name = key.replace("/", ".") + ".T"
            self.inits.append(numpy_helper.from_array(np.ascontiguousarray(self.w[key].T, np.float32), name))
            self.names[k] = name
        return self.names[k]

    def linear(self, x, prefix):
        y = self.op("MatMul", [x, self.weight_t(prefix + "/weight")])
        if prefix + "/bias" in self.w:
            y = self.op("Add", [y, self.weight(prefix + "/bias")])
        return y

    def layer_norm(self, x, prefix):
        return self.op("LayerNormalization", [x, self.weight(prefix + "/gamma"), self.weight(prefix + "/beta")],
                       axis=-1, epsilon=1e-5)

    def gelu(self, x):  # exact: x/2 * (1 + erf(x/sqrt 2))
        e = self.op("Erf", [self.op("Div", [x, self.const(np.sqrt(2.0))])])
        return self.op("Mul", [self.op("Mul", [x, self.const(0.5)]), self.op("Add", [e, self.const(1.0)])])

    def split(self, x, parts, width):
        outs = [self.fresh("part") for _ in range(parts)]
        self.nodes.append(helper.make_node("Split", [x, self.const([width] * parts, np.int64)], outs, axis=-1))
        return outs

    def attention(self, q, k, v, heads, mask=None):
        d = self.d
        dh = d // heads

        def split_heads(t):  # [B, T, d] -> [B, H, T, dh]
            return self.op("Transpose", [self.op("Reshape", [t, self.const([0, -1, heads, dh], np.int64)])],
                           perm=[0, 2, 1, 3])

        q, k, v = split_heads(q), split_heads(k), split_heads(v)
        scores = self.op("Mul", [self.op("MatMul", [q, self.op("Transpose", [k], perm=[0, 1, 3, 2])]),
                                 self.const(1.0 / np.sqrt(dh))])
        if mask is not None:
            scores = self.op("Add", [scores, mask])
        ctx = self.op("MatMul", [self.op("Softmax", [scores], axis=-1), v])
        ctx = self.op("Transpose", [ctx], perm=[0, 2, 1, 3])
        return self.op("Reshape", [ctx, self.const([0, -1, d], np.int64)])

    def model(self, name, inputs, outputs, meta):
        graph = helper.make_graph(self.nodes, name, inputs, outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)],
                              producer_name="barnabee whisper_to_onnx.py")
        m.ir_version = 8
        for k, v in meta.items():
            m.metadata_props.add(key=k, value=str(v))
        onnx.checker.check_model(m)
        return m


def layer_count(w, part):
    return len({k.split("/")[1] for k in w if re.match(rf"{part}/layer_\d+/", k)})


def dims(w):
    d = w["encoder/layer_norm/gamma"].shape[0]
    return dict(
        d_model=d,
        heads=int(np.asarray(w["encoder/num_heads"]).reshape(-1)[0]) if "encoder/num_heads" in w else d // 64,
        encoder_layers=layer_count(w, "encoder"),
        decoder_layers=layer_count(w, "decoder"),
        n_mels=w["encoder/conv1/weight"].shape[1],
        vocab=w["decoder/embeddings/weight"].shape[0],
        ffn=w["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        source_positions=w["encoder/position_encodings/encodings"].shape[0],
        target_positions=w["decoder/position_encodings/encodings"].shape[0],
    )


def encoder_graph(w, dm, meta):
    g = Graph(w)
    g.d = dm["d_model"]
    x = g.gelu(g.op("Conv", ["input_features", g.weight("encoder/conv1/weight"), g.weight("encoder/conv1/bias")],
                    kernel_shape=[3], pads=[1, 1]))
    x = g.gelu(g.op("Conv", [x, g.weight("encoder/conv2/weight"), g.weight("encoder/conv2/bias")],
                    kernel_shape=[3], pads=[1, 1], strides=[2]))
    x = g.op("Add", [g.op("Transpose", [x], perm=[0, 2, 1]), g.weight("encoder/position_encodings/encodings")])
    for i in range(dm["encoder_layers"]):
        p = f"encoder/layer_{i}"
        q, k, v = g.split(g.linear(g.layer_norm(x, p + "/self_attention/layer_norm"),
                                   p + "/self_attention/linear_0"), 3, g.d)
        x = g.op("Add", [x, g.linear(g.attention(q, k, v, dm["heads"]), p + "/self_attention/linear_1")])
        h = g.linear(g.gelu(g.linear(g.layer_norm(x, p + "/ffn/layer_norm"), p + "/ffn/linear_0")), p + "/ffn/linear_1")
        x = g.op("Add", [x, h])
    g.nodes.append(helper.make_node("LayerNormalization", [x, g.weight("encoder/layer_norm/gamma"),
                                                           g.weight("encoder/layer_norm/beta")],
                                    ["last_hidden_state"], axis=-1, epsilon=1e-5))
    return g.model(
        "whisper_encoder",
        [helper.make_tensor_value_info("input_features", TensorProto.FLOAT, ["batch_size", dm["n_mels"], 3000])],
        [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT,
                                       ["batch_size", dm["source_positions"], dm["d_model"]])],
        meta)


def decoder_graph(w, dm, meta):
    g = Graph(w)
    g.d = dm["d_model"]
    seq = g.op("Shape", ["input_ids"], start=1, end=2)  # [T]
    zero, axis0 = g.const([0], np.int64), g.const([0], np.int64)
    x = g.op("Gather", [g.weight("decoder/embeddings/weight"), "input_ids"], axis=0)
    x = g.op("Add", [x, g.op("Slice", [g.weight("decoder/position_encodings/encodings"), zero, seq, axis0])])
    n = dm["target_positions"]
    causal = np.triu(np.full((n, n), -1e9, np.float32), 1)
    mask = g.op("Slice", [g.const(causal), g.const([0, 0], np.int64), g.op("Concat", [seq, seq], axis=0),
                          g.const([0, 1], np.int64)])
    for i in range(dm["decoder_layers"]):
        p = f"decoder/layer_{i}"
        q, k, v = g.split(g.linear(g.layer_norm(x, p + "/self_attention/layer_norm"),
                                   p + "/self_attention/linear_0"), 3, g.d)
        x = g.op("Add", [x, g.linear(g.attention(q, k, v, dm["heads"], mask), p + "/self_attention/linear_1")])
        q = g.linear(g.layer_norm(x, p + "/attention/layer_norm"), p + "/attention/linear_0")
        k, v = g.split(g.linear("encoder_hidden_states", p + "/attention/linear_1"), 2, g.d)
        x = g.op("Add", [x, g.linear(g.attention(q, k, v, dm["heads"]), p + "/attention/linear_2")])
        h = g.linear(g.gelu(g.linear(g.layer_norm(x, p + "/ffn/layer_norm"), p + "/ffn/linear_0")), p + "/ffn/linear_1")
        x = g.op("Add", [x, h])
    x = g.layer_norm(x, "decoder/layer_norm")
    # the output projection is the token embedding (tied); Gemm with transB reads it in place
    flat = g.op("Reshape", [x, g.const([-1, g.d], np.int64)])
    logits = g.op("Gemm", [flat, g.weight("decoder/embeddings/weight")], transB=1)
    shape = g.op("Concat", [g.op("Shape", ["input_ids"]), g.const([dm["vocab"]], np.int64)], axis=0)
    g.nodes.append(helper.make_node("Reshape", [logits, shape], ["logits"]))
    return g.model(
        "whisper_decoder",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch_size", "decoder_sequence_length"]),
         helper.make_tensor_value_info("encoder_hidden_states", TensorProto.FLOAT,
                                       ["batch_size", "encoder_sequence_length", dm["d_model"]])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT,
                                       ["batch_size", "decoder_sequence_length", dm["vocab"]])],
        meta)


# ---- tokenizer and generation config ----------------------------------------------------------

def special_ids(tokenizer):
    return {t["content"]: t["id"] for t in tokenizer.get("added_tokens", [])}


def generation_config(tokenizer, ct2_config, dm):
    sp = special_ids(tokenizer)

    def need(tok):
        if tok not in sp:
            raise SystemExit(f"tokenizer.json has no special token {tok}")
        return sp[tok]

    eot, sot, translate = need("<|endoftext|>"), need("<|startoftranscript|>"), need("<|translate|>")
    transcribe, notimestamps = need("<|transcribe|>"), need("<|notimestamps|>")
    multilingual = dm["vocab"] >= 51865  # transformers' rule: the .en models have 51864 tokens
    gc = {
        "decoder_start_token_id": sot,
        "bos_token_id": eot,
        "eos_token_id": eot,
        "pad_token_id": eot,
        "no_timestamps_token_id": notimestamps,
        "is_multilingual": multilingual,
        "max_length": dm["target_positions"],
        "suppress_tokens": ct2_config.get("suppress_ids", []),
        "begin_suppress_tokens": ct2_config.get("suppress_ids_begin", [220, eot]),
        "alignment_heads": ct2_config.get("alignment_heads", []),
        "return_timestamps": False,
    }
    if multilingual:
        gc["lang_to_id"] = {t: i for t, i in sp.items() if sot < i < translate}
        gc["task_to_id"] = {"transcribe": transcribe, "translate": translate}
        gc["forced_decoder_ids"] = [[1, None], [2, transcribe], [3, notimestamps]]
    else:
        gc["forced_decoder_ids"] = [[1, notimestamps]]
    return gc


def model_config(dm, gc):
    return {
        "model_type": "whisper",
        "architectures": ["WhisperForConditionalGeneration"],
        "vocab_size": dm["vocab"],
        "num_mel_bins": dm["n_mels"],
        "d_model": dm["d_model"],
        "encoder_layers": dm["encoder_layers"],
        "decoder_layers": dm["decoder_layers"],
        "encoder_attention_heads": dm["heads"],
        "decoder_attention_heads": dm["heads"],
        "encoder_ffn_dim": dm["ffn"],
        "decoder_ffn_dim": dm["ffn"],
        "max_source_positions": dm["source_positions"],
        "max_target_positions": dm["target_positions"],
        "activation_function": "gelu",
        "decoder_start_token_id": gc["decoder_start_token_id"],
        "eos_token_id": gc["eos_token_id"],
        "pad_token_id": gc["pad_token_id"],
        "bos_token_id": gc["bos_token_id"],
        "suppress_tokens": gc["suppress_tokens"],
        "begin_suppress_tokens": gc["begin_suppress_tokens"],
        "torch_dtype": "float32",
    }


def byte_decoder():
    """GPT-2's bytes_to_unicode, inverted."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def detokenize(tokenizer, ids):
    inv = {i: t for t, i in tokenizer["model"]["vocab"].items()}
    dec = byte_decoder()
    raw = bytes(dec[c] for i in ids if i in inv for c in inv[i])
    return raw.decode("utf-8", errors="replace").strip()


# ---- the self-check against CTranslate2 ------------------------------------------------------

def speak(text, voice):
    """espeak-ng speech, resampled (band-limited, FFT) from 22,050 to 16 kHz float32."""
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "s.wav")
        subprocess.run(["espeak-ng", "-v", voice, "-s", "150", "-w", p, text], check=True)
        with wave.open(p) as w:
            rate, pcm = w.getframerate(), np.frombuffer(w.readframes(w.getnframes()), "<i2")
    x = pcm.astype(np.float64) / 32768.0
    n = int(round(len(x) * 16000 / rate))
    spec = np.fft.rfft(x)[: n // 2 + 1]
    y = np.fft.irfft(spec, n) * (n / len(x))
    pad = np.zeros(8000)
    return np.concatenate([pad, y, pad]).astype(np.float32)


def prompt(gc, language="en"):
    if gc["is_multilingual"]:
        return [gc["decoder_start_token_id"], gc["lang_to_id"][f"<|{language}|>"],
                gc["task_to_id"]["transcribe"], gc["no_timestamps_token_id"]]
    return [gc["decoder_start_token_id"], gc["no_timestamps_token_id"]]


def greedy(decoder, hidden, gc, max_tokens=128):
    """barnabee-inference's decoding rules, on ONNX Runtime."""
    ids = prompt(gc)
    out = []
    for step in range(max_tokens):
        logits = decoder.run(["logits"], {"input_ids": np.array([ids], np.int64),
                                          "encoder_hidden_states": hidden})[0][0, -1].astype(np.float64)
        logits[gc["suppress_tokens"]] = -np.inf
        if step == 0:
            logits[gc["begin_suppress_tokens"]] = -np.inf
        tok = int(np.argmax(logits))
        if tok == gc["eos_token_id"]:
            break
        out.append(tok)
        ids.append(tok)
    return out


def check(ct2_dir, out_dir, gc, tokenizer):
    import ctranslate2
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    enc = ort.InferenceSession(os.path.join(out_dir, "encoder_model.onnx"), opts, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(os.path.join(out_dir, "decoder_model.onnx"), opts, providers=["CPUExecutionProvider"])
    ref = ctranslate2.models.Whisper(ct2_dir, device="cpu", compute_type="float32", intra_threads=1)
    report, ok = {"ctranslate2": ctranslate2.__version__, "onnxruntime": ort.__version__,
                  "encoder_tolerance": ENCODER_TOLERANCE, "clips": []}, True
    for text, voice in CLIPS:
        mel = whisper_mel.log_mel(speak(text, voice))[None]
        t = time.perf_counter()
        ours = enc.run(["last_hidden_state"], {"input_features": mel})[0]
        t_enc = time.perf_counter() - t
        theirs = np.array(ref.encode(ctranslate2.StorageView.from_array(mel), to_cpu=True))
        diff = float(np.abs(ours - theirs).max())
        t = time.perf_counter()
        tokens = greedy(dec, ours, gc)
        t_dec = time.perf_counter() - t
        res = ref.generate(ctranslate2.StorageView.from_array(mel), [prompt(gc)], beam_size=1, max_length=128,
                           suppress_blank=True, suppress_tokens=[-1])
        ct2_tokens = [i for i in res[0].sequences_ids[0] if i != gc["eos_token_id"]]
        same = tokens == ct2_tokens
        ok &= same and diff < ENCODER_TOLERANCE
        mean_diff = float(np.abs(ours - theirs).mean())
        clip = {"text": text, "voice": voice, "encoder_max_abs_diff": diff, "encoder_mean_abs_diff": mean_diff,
                "encoder_mean_abs": float(np.abs(theirs).mean()), "tokens_identical": same,
                "onnx_tokens": tokens, "ct2_tokens": ct2_tokens, "transcript": detokenize(tokenizer, tokens),
                "onnx_encoder_s": round(t_enc, 3), "onnx_decode_s": round(t_dec, 3)}
        report["clips"].append(clip)
        print(f"  {text!r} ({voice}): encoder max|diff| {diff:.2e}, mean|diff| {mean_diff:.1e} "
              f"(mean|x| {clip['encoder_mean_abs']:.3f}), "
              f"greedy tokens {'identical' if same else 'DIFFERENT'} ({len(tokens)}), heard {clip['transcript']!r}, "
              f"ONNX encoder {t_enc:.2f} s + decode {t_dec:.2f} s")
        if not same:
            print(f"    onnx {tokens}\n    ct2  {ct2_tokens}")
    with open(os.path.join(out_dir, "conversion-check.json"), "w") as f:
        json.dump(report, f, indent=1)
    return ok


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 2:
        raise SystemExit(__doc__)
    src, out = args
    w = read_ct2(os.path.join(src, "model.bin"))
    dm = dims(w)
    ct2_config = json.load(open(os.path.join(src, "config.json")))
    tokenizer = json.load(open(os.path.join(src, "tokenizer.json")))
    meta = {"converted_from": "CTranslate2 model.bin", **dm}
    os.makedirs(out, exist_ok=True)
    onnx.save(encoder_graph(w, dm, meta), os.path.join(out, "encoder_model.onnx"))
    onnx.save(decoder_graph(w, dm, meta), os.path.join(out, "decoder_model.onnx"))
    shutil.copy(os.path.join(src, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    gc = generation_config(tokenizer, ct2_config, dm)
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(gc, f, indent=1)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(model_config(dm, gc), f, indent=1)
    print(f"converted {src} -> {out}: {dm}")
    if "--check" in sys.argv and not check(src, out, gc, tokenizer):
        raise SystemExit("conversion check FAILED: the ONNX model does not match CTranslate2")


if __name__ == "__main__":
    main()
