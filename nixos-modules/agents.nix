# services.barnabee.agents: router, Home Assistant actions, LLM conversation, cost governor;
# optionally Home Assistant Assist's conversation agent over Wyoming (`wyoming.*`, port 10800).
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
        wyoming = {
          enable = mkOption {
            type = types.bool;
            default = false;
            description = ''
              Serve Home Assistant's Assist as a conversation agent over Wyoming (`[wyoming]
              listen`): in HA add the Wyoming integration at this host and `wyoming.port`, then
              pick "barnabee" as the pipeline's conversation agent. Wyoming has no
              authentication: keep `address` on loopback when HA runs on this host, else
              set it and let in only HA's host with `allowFrom`.
            '';
          };
          address = mkOption {
            type = types.str;
            default = "127.0.0.1";
            example = "0.0.0.0";
            description = "Address the Wyoming conversation service listens on (IPv6 without brackets).";
          };
          port = mkOption {
            type = types.port;
            default = 10800;
            description = "Port of the Wyoming conversation service.";
          };
          allowFrom = mkOption {
            type = blib.allowFromType;
            default = [];
            example = ["192.168.1.30"];
            description = ''
              Addresses or prefixes allowed to reach the Wyoming port (Home Assistant's host), as
              nftables rules in networking.firewall.extraInputRules (the appliance profile turns
              nftables on). Empty: the port is not opened.
            '';
          };
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
          (lib.mkIf cfg.wyoming.enable {
            services.barnabee.agents.settings.wyoming.listen = let
              a = cfg.wyoming.address;
            in
              lib.mkDefault "${
                if lib.hasInfix ":" a
                then "[${a}]"
                else a
              }:${toString cfg.wyoming.port}";
            assertions = [
              {
                assertion = cfg.wyoming.allowFrom == [] || (config.networking.nftables.enable or false);
                message = "services.barnabee.agents.wyoming.allowFrom needs the nftables firewall (networking.nftables.enable = true; the Barnabee appliance profile sets it).";
              }
            ];
            networking.firewall.extraInputRules = lib.mkIf (cfg.wyoming.allowFrom != []) (blib.nftAllowRules {
              addrs = cfg.wyoming.allowFrom;
              ports = [cfg.wyoming.port];
              comment = "barnabee-agents-wyoming";
            });
          })
        ];
    })
  ];
}
