"""Stand-in ONNX models with the production input/output signatures, for the tests.

Real Parakeet / Piper / speaker models cannot be downloaded here, so the tests run the Rust
pre/post-processing against small generated graphs that behave predictably:

- stt/encoder.onnx (Parakeet TDT encoder): audio_signal f32 [1,128,T], length i64 [1]
  -> outputs f32 [1,D,T'] (every 8th feature frame, projected to D), encoded_lengths i64 [1].
- stt/decoder_joint.onnx: encoder_outputs [1,D,1], targets i32 [1,1], target_length i32 [1],
  input_states_1/2 f32 [2,1,H] -> outputs [1,1,1,V+5], prednet_lengths, output_states_1/2.
  The joint "spells" a fixed sentence: after token k it predicts token k+1, after the last one
  the blank; the duration head always says 2 frames. So the transcript is a prefix of the
  sentence whose length follows the audio length (durations and frame bookkeeping matter).
- stt/vocab.txt: `token id` lines, blank last.
- tts/voice.onnx (Piper): input i64 [1,N], input_lengths i64 [1], scales f32 [3]
  -> output f32 [1,1,N*256]: per phoneme id a 256-sample tone whose pitch follows the id.
- tts/voice.onnx.json: Piper config (22050 Hz, espeak voice en-us, an IPA phoneme_id_map).
- speaker/speaker.onnx (WeSpeaker-style): feats f32 [1,T,80] -> embs f32 [1,64]:
  mean and band-centred std over time of the fbank, through a fixed random projection.
- text/model.onnx (BERT-style): input_ids, attention_mask, token_type_ids i64 [1,L]
  -> last_hidden_state f32 [1,L,32] (a fixed embedding table lookup); text/vocab.txt.

Usage: make_models.py OUT_DIR
"""
import json
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = [helper.make_opsetid("", 17)]
out = sys.argv[1]
rng = np.random.default_rng(7)


def save(graph, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    m = helper.make_model(graph, opset_imports=OPSET, producer_name="barnabee-tests")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)


def const(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


# ---------------------------------------------------------------- STT (Parakeet TDT)
WORDS = ["\u2581turn", "\u2581on", "\u2581the", "\u2581kitchen", "\u2581light", "s"]
VOCAB = ["<unk>"] + WORDS + ["<blk>"]
V = len(VOCAB) - 1  # blank id
D, H = 16, 8
os.makedirs(os.path.join(out, "stt"), exist_ok=True)
with open(os.path.join(out, "stt", "vocab.txt"), "w", encoding="utf-8") as f:
    for i, t in enumerate(VOCAB):
        f.write(f"{t} {i}\n")

proj = rng.standard_normal((D, 128)).astype(np.float32) * 0.01
enc = helper.make_graph(
    [
        helper.make_node("Slice", ["audio_signal", "st", "en", "ax", "sp"], ["sub"]),
        helper.make_node("MatMul", ["W", "sub"], ["outputs"]),
        helper.make_node("Add", ["length", "seven"], ["l7"]),
        helper.make_node("Div", ["l7", "eight"], ["encoded_lengths"]),
    ],
    "encoder",
    [
        helper.make_tensor_value_info("audio_signal", TensorProto.FLOAT, [1, 128, "T"]),
        helper.make_tensor_value_info("length", TensorProto.INT64, [1]),
    ],
    [
        helper.make_tensor_value_info("outputs", TensorProto.FLOAT, [1, D, "T2"]),
        helper.make_tensor_value_info("encoded_lengths", TensorProto.INT64, [1]),
    ],
    [
        const("st", np.array([0], np.int64)),
        const("en", np.array([2**62], np.int64)),
        const("ax", np.array([2], np.int64)),
        const("sp", np.array([8], np.int64)),
        const("W", proj),
        const("seven", np.array([7], np.int64)),
        const("eight", np.array([8], np.int64)),
    ],
)
save(enc, os.path.join(out, "stt", "encoder.onnx"))

# joint table: row = previous token, columns = V+1 token logits + 5 duration logits
table = np.full((V + 1, V + 1 + 5), -10.0, np.float32)
for prev in range(V + 1):
    nxt = 1 if prev == V else (prev + 1 if prev + 1 < V else V)  # blank-start -> first word
    table[prev, nxt] = 10.0
    table[prev, V + 1 + 2] = 10.0  # duration index 2 -> advance 2 frames
dec = helper.make_graph(
    [
        helper.make_node("Gather", ["table", "targets"], ["g"], axis=0),  # [1,1,V+6]
        helper.make_node("ReduceSum", ["encoder_outputs"], ["esum"], keepdims=0),
        helper.make_node("Mul", ["esum", "zero"], ["ez"]),
        helper.make_node("Add", ["g", "ez"], ["g2"]),
        helper.make_node("Reshape", ["g2", "shape4"], ["outputs"]),
        helper.make_node("Add", ["input_states_1", "one"], ["output_states_1"]),
        helper.make_node("Identity", ["input_states_2"], ["output_states_2"]),
        helper.make_node("Identity", ["target_length"], ["prednet_lengths"]),
    ],
    "decoder_joint",
    [
        helper.make_tensor_value_info("encoder_outputs", TensorProto.FLOAT, [1, D, 1]),
        helper.make_tensor_value_info("targets", TensorProto.INT32, [1, 1]),
        helper.make_tensor_value_info("target_length", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("input_states_1", TensorProto.FLOAT, [2, 1, H]),
        helper.make_tensor_value_info("input_states_2", TensorProto.FLOAT, [2, 1, H]),
    ],
    [
        helper.make_tensor_value_info("outputs", TensorProto.FLOAT, [1, 1, 1, V + 6]),
        helper.make_tensor_value_info("prednet_lengths", TensorProto.INT32, [1]),
        helper.make_tensor_value_info("output_states_1", TensorProto.FLOAT, [2, 1, H]),
        helper.make_tensor_value_info("output_states_2", TensorProto.FLOAT, [2, 1, H]),
    ],
    [
        const("table", table),
        const("zero", np.array(0.0, np.float32)),
        const("one", np.array(1.0, np.float32)),
        const("shape4", np.array([1, 1, 1, V + 6], np.int64)),
    ],
)
save(dec, os.path.join(out, "stt", "decoder_joint.onnx"))

# ---------------------------------------------------------------- TTS (Piper)
PHONEMES = list("_^$ !'(),-.:;?abcdefhijklmnopqrstuvwxyzæçðøħŋœǀǁǂǃɐɑɒɓɔɕɖɗɘəɚɛɜɞɟɠɡɢɣɤɥɦɧɨɪɫɬɭɮɯɰɱɲɳɴɵɶɸɹɺɻɽɾʀʁʂʃʄʈʉʊʋʌʍʎʏʐʑʒʔʕʘʙʛʜʝʟʡʢʲˈˌːˑ˞βθχᵻⱱ")
id_map = {p: [i] for i, p in enumerate(PHONEMES)}
os.makedirs(os.path.join(out, "tts"), exist_ok=True)
with open(os.path.join(out, "tts", "voice.onnx.json"), "w", encoding="utf-8") as f:
    json.dump({
        "audio": {"sample_rate": 22050},
        "espeak": {"voice": "en-us"},
        "inference": {"noise_scale": 0.667, "length_scale": 1, "noise_w": 0.8},
        "phoneme_type": "espeak",
        "num_speakers": 1,
        "phoneme_id_map": id_map,
    }, f, ensure_ascii=False)
phase = (2 * np.pi * np.arange(256) / 256.0).astype(np.float32).reshape(1, 1, 256)
tts = helper.make_graph(
    [
        helper.make_node("Cast", ["input"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["f", "ax2"], ["f3"]),  # [1,N,1]
        helper.make_node("Mul", ["f3", "k"], ["pitch"]),  # cycles per 256 samples
        helper.make_node("Add", ["pitch", "base"], ["p2"]),
        helper.make_node("Mul", ["p2", "phase"], ["arg"]),  # [1,N,256]
        helper.make_node("Sin", ["arg"], ["s"]),
        helper.make_node("Mul", ["s", "amp"], ["a"]),
        helper.make_node("ReduceSum", ["scales"], ["ss"], keepdims=0),
        helper.make_node("Mul", ["ss", "zero"], ["sz"]),
        helper.make_node("Add", ["a", "sz"], ["a2"]),
        helper.make_node("Reshape", ["a2", "shape"], ["output"]),
    ],
    "piper",
    [
        helper.make_tensor_value_info("input", TensorProto.INT64, [1, "N"]),
        helper.make_tensor_value_info("input_lengths", TensorProto.INT64, [1]),
        helper.make_tensor_value_info("scales", TensorProto.FLOAT, [3]),
    ],
    [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, "S"])],
    [
        const("ax2", np.array([2], np.int64)),
        const("k", np.array(0.1, np.float32)),
        const("base", np.array(4.0, np.float32)),
        const("phase", phase),
        const("amp", np.array(0.5, np.float32)),
        const("zero", np.array(0.0, np.float32)),
        const("shape", np.array([1, 1, -1], np.int64)),
    ],
)
save(tts, os.path.join(out, "tts", "voice.onnx"))

# ---------------------------------------------------------------- speaker embedding
P = rng.standard_normal((160, 64)).astype(np.float32)
spk = helper.make_graph(
    [
        helper.make_node("ReduceMean", ["feats"], ["mean"], axes=[1], keepdims=0),  # [1,80]
        helper.make_node("Sub", ["feats", "mean3"], ["c"]),
        helper.make_node("Unsqueeze", ["mean", "ax1"], ["mean3"]),
        helper.make_node("Mul", ["c", "c"], ["c2"]),
        helper.make_node("ReduceMean", ["c2"], ["var"], axes=[1], keepdims=0),
        helper.make_node("Sqrt", ["var"], ["std"]),
        # fbank arrives mean-normalised, so the voice shows in how each band varies: centre
        # the per-band std across bands (spectral shape of the variability), then project
        helper.make_node("ReduceMean", ["std"], ["stdm"], axes=[1], keepdims=1),
        helper.make_node("Sub", ["std", "stdm"], ["stdc"]),
        helper.make_node("Concat", ["mean", "stdc"], ["ms"], axis=1),  # [1,160]
        helper.make_node("MatMul", ["ms", "P"], ["embs"]),
    ],
    "speaker",
    [helper.make_tensor_value_info("feats", TensorProto.FLOAT, [1, "T", 80])],
    [helper.make_tensor_value_info("embs", TensorProto.FLOAT, [1, 64])],
    [const("ax1", np.array([1], np.int64)), const("P", P)],
)
# topological order: Unsqueeze must come before Sub
spk.node.insert(1, spk.node.pop(2))
save(spk, os.path.join(out, "speaker", "speaker.onnx"))

# ---------------------------------------------------------------- text embedding (BERT-like)
TVOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "turn", "on", "off", "the", "kitchen", "light",
          "##s", "what", "is", "weather", "today", "switch", "lamp", "capital", "of", "france", ",", "?", "!"]
os.makedirs(os.path.join(out, "text"), exist_ok=True)
with open(os.path.join(out, "text", "vocab.txt"), "w") as f:
    f.write("\n".join(TVOCAB) + "\n")
E = rng.standard_normal((len(TVOCAB), 32)).astype(np.float32)
E[2] = 0.0
E[3] = 0.0  # [CLS]/[SEP] carry no meaning in the stand-in
txt = helper.make_graph(
    [
        helper.make_node("Gather", ["E", "input_ids"], ["h"], axis=0),  # [1,L,32]
        helper.make_node("Cast", ["attention_mask"], ["mf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["mf", "ax2"], ["m3"]),
        helper.make_node("Mul", ["h", "m3"], ["hm"]),
        helper.make_node("Cast", ["token_type_ids"], ["tf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["tf", "ax2"], ["t3"]),
        helper.make_node("Mul", ["t3", "zero"], ["tz"]),
        helper.make_node("Add", ["hm", "tz"], ["last_hidden_state"]),
    ],
    "text",
    [
        helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "L"]),
        helper.make_tensor_value_info("attention_mask", TensorProto.INT64, [1, "L"]),
        helper.make_tensor_value_info("token_type_ids", TensorProto.INT64, [1, "L"]),
    ],
    [helper.make_tensor_value_info("last_hidden_state", TensorProto.FLOAT, [1, "L", 32])],
    [const("E", E), const("ax2", np.array([2], np.int64)), const("zero", np.array(0.0, np.float32))],
)
save(txt, os.path.join(out, "text", "model.onnx"))
print("ok", out)
