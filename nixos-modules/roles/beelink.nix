# The beelink role (nixosModules.beelink): the mini PC in the house. Voice (microphone and
# speaker), agents, memory with replication to S3, watchdog, audio.
{
  config,
  lib,
  ...
}: let
  cfg = config.barnabee.beelink;
in {
  imports = [../default.nix ../appliance.nix];

  options.barnabee.beelink = {
    inferenceHost = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "beast.lan";
      description = "Host name or address of the beast (inference over HTTP 7704 and Wyoming 10300).";
    };
    replication.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Replicate the memory database continuously (set services.barnabee.memory.settings.replication).";
    };
  };

  config = {
    assertions = [
      {
        assertion = cfg.inferenceHost != null;
        message = "barnabee.beelink.inferenceHost is not set: give the beast's host name or address (the voice pipeline's STT/TTS and the agents' embeddings live there).";
      }
      {
        assertion = cfg.replication.enable -> config.services.barnabee.memory.settings.replication != null;
        message = "barnabee.beelink.replication.enable is on but services.barnabee.memory.settings.replication is not set: configure the S3 replica (bucket, endpoint, region, access_key_id) and services.barnabee.memory.replication.secretAccessKeyFile, or set barnabee.beelink.replication.enable = false.";
      }
    ];

    services.barnabee = {
      memory.enable = true;
      agents.enable = true;
      voice.enable = true;
      watchdog.enable = true;
    };

    # Audio: ALSA only; the voice unit gets /dev/snd through DeviceAllow=char-alsa and the audio
    # group. alsa-store keeps mixer levels across reboots.
    hardware.alsa.enablePersistence = true;
  };
}
