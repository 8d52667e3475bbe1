# services.barnabee.voice: microphone and speaker, wake word + VAD, the voice pipeline.
{
  lib,
  pkgs,
  ...
}: let
  blib = import ./lib.nix {inherit lib;};
  models = import ./models.nix {inherit lib;};
in {
  imports = [
    (blib.mkDaemon {
      role = "voice";
      port = 7703;
      description = "the Barnabee voice daemon";
      extraOptions = {
        onnxruntime = lib.mkPackageOption pkgs "onnxruntime" {};
        models = models.option "voice";
      };
      extraConfig = cfg: {
        assertions =
          models.assertions "voice" cfg.models
          ++ [
            {
              assertion = lib.all (n: lib.elem n ["wake" "vad"]) (lib.attrNames cfg.models);
              message = "services.barnabee.voice.models: only `wake` and `vad` run locally (`[inference.local.wake|vad]`, mode = \"local\"); STT and TTS stay on the beast. Got: ${lib.concatStringsSep ", " (lib.attrNames cfg.models)}.";
            }
            {
              # barnabee-voice's [inference.local] has both `wake` and `vad` as required keys
              # (crates/voice/src/config.rs LocalConfig): one without the other fails
              # --check-config at build time, so say it here, naming the option.
              assertion = cfg.models == {} || (cfg.models ? wake && cfg.models ? vad);
              message = "services.barnabee.voice.models: local mode needs both `wake` and `vad` (barnabee-voice's [inference.local] requires both). Got: ${lib.concatStringsSep ", " (lib.attrNames cfg.models)}.";
            }
          ];
        # mode = "local": the wake word and VAD models in barnabee-inference's format.
        services.barnabee.voice.settings.inference.local = lib.mkIf (cfg.models != {}) (
          models.render pkgs cfg.models
          // {runtime.library = "${cfg.onnxruntime}/lib/libonnxruntime.so";}
        );
        # ALSA: the packaged unit (crates/voice/systemd/barnabee-voice.service) already has
        # PrivateDevices=no, DevicePolicy=closed, DeviceAllow=char-alsa rw and
        # SupplementaryGroups=audio; the drop-in adds nothing and weakens nothing.
        systemd.services.barnabee-voice.environment.ORT_DYLIB_PATH = "${cfg.onnxruntime}/lib/libonnxruntime.so";
      };
    })
  ];
}
