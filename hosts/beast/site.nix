# Site values for the beast: the operator sets these; unset ones fail evaluation with an
# assertion saying what to set.
#
#   barnabee.operatorKeys = [ "ssh-ed25519 AAAA... alice@laptop" ];
#   services.barnabee.inference.models = {
#     stt = { kind = "stt"; url = "https://<pinned release URL>/model.onnx"; sha256 = "<64 hex>"; };
#     tts = { kind = "tts"; url = "..."; sha256 = "..."; };
#     vad = { kind = "vad"; url = "..."; sha256 = "..."; };
#     wake = { kind = "wake"; url = "..."; sha256 = "..."; };
#     embeddings = { kind = "embedding"; url = "..."; sha256 = "..."; };
#   };
_: {
}
