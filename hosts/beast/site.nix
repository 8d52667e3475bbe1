# Site values for the beast: the operator sets these; unset ones fail evaluation with an
# assertion saying what to set.
#
#   barnabee.operatorKeys = [ "ssh-ed25519 AAAA... alice@laptop" ];
#   services.barnabee.inference.models = {          # docs/nixos.md "Models"
#     silero = { kind = "vad"; url = "https://<pinned release URL>/silero_vad.onnx"; sha256 = "<64 hex>"; };
#     wake = { kind = "wake"; files = { melspectrogram = { url = "..."; sha256 = "..."; };
#                                       embedding = { ... }; hey_barnabee = { ... }; }; };
#     stt = { kind = "stt"; files = { encoder = { ... }; decoder_joint = { ... }; vocab = { ... }; }; };
#     tts = { kind = "tts"; files = { model = { ... }; config = { ... }; }; };
#     embeddings = { kind = "text_embedding"; files = { model = { ... }; vocab = { ... }; }; };
#   };
#
# Optional: node_exporter (port 9100) is open to barnabee.beast.clients by default; only the
# beelink's Prometheus scrapes it (docs/nixos.md "Monitoring and notifications"):
#
#   barnabee.monitoring.nodeExporter.allowFrom = [ "192.168.1.20" ];   # the beelink
_: {
}
