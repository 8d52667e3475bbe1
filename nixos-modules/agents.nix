# services.barnabee.agents: router, Home Assistant actions, LLM conversation, cost governor.
{lib, ...}: let
  blib = import ./lib.nix {inherit lib;};
  inherit (lib) mkOption types;
in {
  imports = [
    (blib.mkDaemon {
      role = "agents";
      port = 7702;
      description = "the Barnabee agents daemon";
      extraOptions = {
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
      extraConfig = cfg: {
        services.barnabee.agents.credentials =
          lib.optionalAttrs (cfg.openrouterApiKeyFile != null) {openrouter-api-key = cfg.openrouterApiKeyFile;}
          // lib.optionalAttrs (cfg.homeAssistantTokenFile != null) {home-assistant-token = cfg.homeAssistantTokenFile;};
        systemd.services.barnabee-agents = {
          wants = ["barnabee-memory.service"];
        };
      };
    })
  ];
}
