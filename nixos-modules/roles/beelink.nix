# The beelink role (nixosModules.beelink): the mini PC in the house. Voice (microphone and
# speaker), agents, memory with replication to S3, watchdog, audio, and the monitoring server
# (Prometheus + Alertmanager scraping both hosts; ../monitoring.nix).
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.barnabee.beelink;
  # A local daemon's base URL from its [service] listen (0.0.0.0/[::] -> loopback).
  localUrl = role:
    "http://"
    + builtins.replaceStrings ["0.0.0.0:" "[::]:"] ["127.0.0.1:" "[::1]:"]
    config.services.barnabee.${role}.settings.service.listen;
  memory = config.services.barnabee.memory;
  memRepl = memory.settings.replication;
  # Everything the family would miss comes back on a replacement beelink: the agents' cost
  # ledger and the watchdog's incident log replicate beside memory's replica, under memory's
  # prefix plus a suffix (`barnabee/memory` -> `barnabee/memory-agents`, `/backup/memory` ->
  # `/backup/memory-watchdog`; a suffix, not a sibling directory, so a file replica at
  # /var/lib/backup never spills into /var/lib), same bucket, endpoint and secret. A `url`
  # replica is not rewritten: set theirs (a warning says so).
  suffixed = name: "${memRepl.path}-${name}";
  derive = cfg.replication.enable && memRepl != null && memRepl.url == null && memRepl.path != null;
  replicaOf = name:
    lib.mkDefault (builtins.removeAttrs memRepl ["verify" "secret_access_key_file"]
      // {path = suffixed name;});
in {
  imports = [../default.nix ../appliance.nix];

  options.barnabee.beelink = {
    localLlm = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = ''
          Use the beast's local LLM server (barnabee.beast.localLlm) as the agents'
          `[llm.local_server]`: tried after the cloud providers, and the one left in the yellow
          budget band or in "local only" mode.
        '';
      };
      port = lib.mkOption {
        type = lib.types.port;
        default = 8080;
        description = "The port barnabee.beast.localLlm.port serves on.";
      };
    };
    inferenceHost = lib.mkOption {
      type = lib.types.nullOr lib.types.str;
      default = null;
      example = "beast.lan";
      description = ''
        Host name or IPv4 address of the beast (an IPv6 address in brackets): the voice daemon's
        `[inference] wyoming` (port 10300) and `[speaker] inference_url` (HTTP 7704) point there.
      '';
    };
    replication.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Replicate the memory database continuously (set services.barnabee.memory.settings.replication),
        and with it the agents' cost ledger and the watchdog's incident log (defaulted to suffixed
        prefixes of memory's replica unless it is given as a `url`).
      '';
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

    warnings = lib.optional (cfg.replication.enable && memRepl != null && !derive) "barnabee.beelink: services.barnabee.memory.settings.replication is given as a `url`, so the agents' cost ledger and the watchdog's incident log are not replicated by default; set services.barnabee.{agents,watchdog}.settings.replication.";

    services.barnabee = {
      memory.enable = true;
      agents.enable = true;
      voice.enable = true;
      watchdog.enable = true;
      # The operator console on the LAN (port 7706, private ranges only; nixos-modules/console.nix).
      console.enable = lib.mkDefault true;
      console.remoteDaemons = lib.mkIf (cfg.inferenceHost != null) (lib.mkDefault [
        {
          role = "inference";
          host = "beast";
          url = "http://${cfg.inferenceHost}:7704";
        }
      ]);
      agents.settings.replication = lib.mkIf derive (replicaOf "agents");
      watchdog.settings.replication = lib.mkIf derive (replicaOf "watchdog");
      agents.replication.secretAccessKeyFile = lib.mkIf derive (lib.mkDefault memory.replication.secretAccessKeyFile);
      watchdog.replication.secretAccessKeyFile = lib.mkIf derive (lib.mkDefault memory.replication.secretAccessKeyFile);
    };

    # Wire the voice pipeline (crates/voice/voice.example.toml): STT/TTS (Wyoming 10300) and the
    # speaker embeddings (HTTP 7704) on the beast, the agents and memory on this machine. Without
    # these the daemon starts but stays degraded ("not configured"). mkDefault: a site may point
    # elsewhere (another satellite's coordinator, a different port).
    services.barnabee.voice.settings = lib.mkIf (cfg.inferenceHost != null) {
      inference.wyoming = lib.mkDefault "${cfg.inferenceHost}:10300";
      agents.url = lib.mkDefault (localUrl "agents");
      speaker = {
        inference_url = lib.mkDefault "http://${cfg.inferenceHost}:7704";
        memory_url = lib.mkDefault (localUrl "memory");
      };
    };

    # Recall by meaning: memory embeds every memory (and text queries) with the beast's
    # all-MiniLM-L6-v2 (the default model set's text embedding model).
    services.barnabee.memory.settings.embeddings = lib.mkIf (cfg.inferenceHost != null) {
      url = lib.mkDefault "http://${cfg.inferenceHost}:7704/v1/embed/text";
      model = lib.mkDefault "all-minilm-l6-v2";
    };

    # Timers ring on the beelink's speaker: the agents announce through the local voice daemon.
    services.barnabee.agents.settings.voice.url = lib.mkDefault (localUrl "voice");
    services.barnabee.agents.settings.llm.local_server = lib.mkIf (cfg.localLlm.enable && cfg.inferenceHost != null) {
      url = lib.mkDefault "http://${cfg.inferenceHost}:${toString cfg.localLlm.port}/v1";
    };

    # Monitoring on by default: Prometheus (30 days) and Alertmanager on loopback, scraping this
    # host's daemons and node_exporter and, on the beast, inference (the one beast daemon on the
    # LAN: port 7704, open to barnabee.beast.clients) and node_exporter (9100, open to
    # barnabee.monitoring.nodeExporter.allowFrom there).
    barnabee.monitoring = {
      enable = lib.mkDefault true;
      host = lib.mkDefault "beelink";
      remoteHosts.beast = lib.mkIf (cfg.inferenceHost != null) {
        address = lib.mkDefault cfg.inferenceHost;
        daemons.inference = lib.mkDefault 7704;
      };
    };

    # Audio: ALSA only; the voice unit gets /dev/snd through DeviceAllow=char-alsa and the audio
    # group. alsa-store keeps mixer levels across reboots.
    hardware.alsa.enablePersistence = true;
    # aplay/arecord/amixer: the runbook's "is the microphone there" commands.
    environment.systemPackages = [pkgs.alsa-utils];
  };
}
