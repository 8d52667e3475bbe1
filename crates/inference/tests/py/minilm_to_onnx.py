"""Build an ONNX graph for sentence-transformers/all-MiniLM-L6-v2 from its model.safetensors,
without torch (adapted from the research probe shared/peers/voice/minilm_to_onnx.py).
BERT embeddings, 6 layers of 12-head attention with the (1-mask)*-1e4 additive mask, erf-GELU
FFN; outputs last_hidden_state [B,S,384] (barnabee-inference mean-pools and normalises it) and
sentence_embedding (pooled + normalised in the graph, for cross-checks).

Usage: minilm_to_onnx.py MODEL.safetensors OUT.onnx
"""
import json, struct, sys, numpy as np, onnx
from onnx import helper as h, TensorProto as T, numpy_helper as nh
src, dst = sys.argv[1], sys.argv[2]
f = open(src, "rb"); n = struct.unpack("<Q", f.read(8))[0]; hdr = json.loads(f.read(n)); base = 8 + n
W = {}
for k, v in hdr.items():
    if k == "__metadata__": continue
    s, e = v["data_offsets"]; f.seek(base + s); dt = {"F32": np.float32, "I64": np.int64}[v["dtype"]]
    W[k] = np.frombuffer(f.read(e - s), dtype=dt).reshape(v["shape"])
cfg = dict(hidden=384, heads=12, layers=6, eps=1e-12)
nodes, inits = [], []
def init(name, arr): inits.append(nh.from_array(np.ascontiguousarray(arr), name)); return name
def node(op, ins, outs=None, **kw):
    outs = outs or [f"{op}_{len(nodes)}"]; nodes.append(h.make_node(op, ins, outs, **kw)); return outs[0]
def linear(x, p):  # HF Linear: y = x W^T + b
    return node("Add", [node("MatMul", [x, init(p + ".wT", W[p + ".weight"].T)]), init(p + ".b", W[p + ".bias"])])
def ln(x, p):
    return node("LayerNormalization", [x, init(p + ".g", W[p + ".weight"]), init(p + ".bb", W[p + ".bias"])], axis=-1, epsilon=cfg["eps"])
H, NH = cfg["hidden"], cfg["heads"]; DH = H // NH
# embeddings
seq_len = node("Shape", ["input_ids"], start=1, end=2)   # 1-D [S]
pos_e = node("Slice", [init("pos_emb", W["embeddings.position_embeddings.weight"]), init("zero_v", np.array([0], np.int64)), seq_len, init("axis0", np.array([0], np.int64))])
x = node("Add", [node("Gather", [init("word_emb", W["embeddings.word_embeddings.weight"]), "input_ids"]), pos_e])
x = node("Add", [x, node("Gather", [init("type_emb", W["embeddings.token_type_embeddings.weight"]), "token_type_ids"])])
x = ln(x, "embeddings.LayerNorm")
maskf = node("Cast", ["attention_mask"], to=T.FLOAT)
ext = node("Mul", [node("Sub", [init("onef", np.array(1, np.float32)), node("Unsqueeze", [maskf, init("ax12", np.array([1, 2], np.int64))])]), init("neg", np.array(-1e4, np.float32))])
shp_heads = init("shp_heads", np.array([0, 0, NH, DH], np.int64)); shp_back = init("shp_back", np.array([0, 0, H], np.int64))
scale = init("scale", np.array(1.0 / np.sqrt(DH), np.float32))
for i in range(cfg["layers"]):
    p = f"encoder.layer.{i}."
    def heads(t): return node("Transpose", [node("Reshape", [t, shp_heads])], perm=[0, 2, 1, 3])
    q, k, v = (heads(linear(x, p + f"attention.self.{n}")) for n in ("query", "key", "value"))
    sc = node("Add", [node("Mul", [node("MatMul", [q, node("Transpose", [k], perm=[0, 1, 3, 2])]), scale]), ext])
    ctx = node("Reshape", [node("Transpose", [node("MatMul", [node("Softmax", [sc], axis=-1), v])], perm=[0, 2, 1, 3]), shp_back])
    x = ln(node("Add", [linear(ctx, p + "attention.output.dense"), x]), p + "attention.output.LayerNorm")
    inter = linear(x, p + "intermediate.dense")
    gelu = node("Mul", [node("Mul", [inter, init(f"half{i}", np.array(0.5, np.float32))]),
                        node("Add", [init(f"one{i}", np.array(1, np.float32)), node("Erf", [node("Div", [inter, init(f"sqrt2_{i}", np.array(np.sqrt(2), np.float32))])])])])
    x = ln(node("Add", [linear(gelu, p + "output.dense"), x]), p + "output.LayerNorm")
node("Identity", [x], ["last_hidden_state"])
m3 = node("Unsqueeze", [maskf, init("ax2", np.array([2], np.int64))])
summed = node("ReduceSum", [node("Mul", [x, m3]), init("ax1", np.array([1], np.int64))], keepdims=0)
cnt = node("Max", [node("ReduceSum", [m3, init("ax1b", np.array([1], np.int64))], keepdims=0), init("tiny", np.array(1e-9, np.float32))])
mean = node("Div", [summed, cnt])
norm = node("Max", [node("ReduceL2", [mean], axes=[1], keepdims=1), init("tiny2", np.array(1e-12, np.float32))])
node("Div", [mean, norm], ["sentence_embedding"])
ins = [h.make_tensor_value_info(n, T.INT64, ["batch", "seq"]) for n in ("input_ids", "attention_mask", "token_type_ids")]
outs = [h.make_tensor_value_info("last_hidden_state", T.FLOAT, ["batch", "seq", H]), h.make_tensor_value_info("sentence_embedding", T.FLOAT, ["batch", H])]
g = h.make_graph(nodes, "all-MiniLM-L6-v2", ins, outs, inits)
m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)], producer_name="barnabee-research"); m.ir_version = 8
onnx.checker.check_model(m); onnx.save(m, dst); print("wrote", dst, len(nodes), "nodes")
