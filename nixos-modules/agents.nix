# services.barnabee.agents: router, Home Assistant actions, LLM conversation, cost governor.
{
  config,
  lib,
  ...
}: let
  blib = import ./lib.nix {inherit lib;};
  inherit (lib) mkOption types;
  cfg = config.services.barnabee.agents;
in {
  imports = [
    (blib.mkDaemon {
      role = "agents";
      port = 7702;
      description = "the Barnabee agents daemon";
      settingsOptions = {
        # The cost ledger lives in the StateDirectory ($STATE_DIRECTORY); a replacement
        # beelink restores it (this month's spend) before the daemon opens it.
        replication = blib.replicationOption {
          inherit cfg;
          what = "the LLM cost ledger";
        };
      };
      extraOptions = {
        replication.secretAccessKeyFile = blib.replicationSecretOption;
        openrouterApiKeyFile = mkOption {
          type = types.nullOr blib.pathNotInStore;
          default = null;
          description = ''
            File with the OpenRouter API key; passed as the credential `openrouter-api-key`
            (name it in the settings' `*_file` key, e.g. `api_key_file = "openrouter-api-key"`).
          '';
        };
        homeAssistantTokenFile = mkOption {
          type = types.nullOr blib.pathNotInStore;
          default = null;
          description = ''
            File with the Home Assistant long-lived access token; passed as the credential
            `home-assistant-token`.
          '';
        };
      };
      extraConfig = cfg:
        lib.mkMerge [
          (blib.replicationConfig {
            role = "agents";
            inherit cfg;
          })
          {
            services.barnabee.agents.credentials =
              lib.optionalAttrs (cfg.openrouterApiKeyFile != null) {openrouter-api-key = cfg.openrouterApiKeyFile;}
              // lib.optionalAttrs (cfg.homeAssistantTokenFile != null) {home-assistant-token = cfg.homeAssistantTokenFile;};
            systemd.services.barnabee-agents = {
              wants = ["barnabee-memory.service"];
            };
          }
        ];
    })
  ];
}
