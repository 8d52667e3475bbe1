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
        assertions = models.assertions "voice" cfg.models;
        services.barnabee.voice.settings.models = lib.mkIf (cfg.models != {}) (models.render pkgs cfg.models);
        # ALSA devices are already allowed by the packaged unit (DeviceAllow=char-alsa, audio
        # group); on NixOS the sound card needs the ALSA state service and nothing else.
        systemd.services.barnabee-voice.environment.ORT_DYLIB_PATH = "${cfg.onnxruntime}/lib/libonnxruntime.so";
      };
    })
  ];
}
