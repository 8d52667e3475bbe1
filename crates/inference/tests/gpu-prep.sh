#!/usr/bin/env bash
# Bundle what the GPU tests need into the ignored folder .cache/inference-gpu (about 60 MB:
# the test binary, libonnxruntime.so, the Silero model) so a GPU machine without network
# can run them. Then, on the GPU machine (repository root):
#   BARNABEE_INFERENCE_CACHE=$PWD/.cache/inference-gpu .cache/inference-gpu/integration-test gpu:: --nocapture --test-threads=1
# Add ORT_DYLIB_PATH=<onnxruntime-gpu's libonnxruntime.so, CUDA/cuDNN on LD_LIBRARY_PATH> and
# BARNABEE_REQUIRE_CUDA=1 to test the CUDA provider too (it skips loudly with a CPU-only runtime).
set -euo pipefail
root="$(cd "$(dirname "$0")/../../.." && pwd)"
src="${BARNABEE_INFERENCE_CACHE:-${BARNABEE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/barnabee}/inference}"
out="$root/.cache/inference-gpu"
rm -rf "$out" && mkdir -p "$out/onnxruntime-1.22.1" "$out/models/silero-vad-6.2.3"
cp -L "$src/onnxruntime-1.22.1/libonnxruntime.so" "$out/onnxruntime-1.22.1/"
cp "$src/models/silero-vad-6.2.3/silero_vad.onnx" "$out/models/silero-vad-6.2.3/"
bin="$(cd "$root" && cargo test -q -p barnabee-inference --test integration --no-run --message-format=json 2>/dev/null |
  sed -n 's/.*"executable":"\([^"]*integration-[^"]*\)".*/\1/p' | tail -1)"
cp "$bin" "$out/integration-test"
du -sh "$out"
