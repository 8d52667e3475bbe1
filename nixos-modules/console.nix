# services.barnabee.console: the operator console, a web page for the family's appliance
# (crates/console): every daemon's health on both hosts, memories, cost, backups; one password.
#
# It listens on the LAN (`address`, default all addresses) and the firewall lets in only
# `allowFrom` (default: the private address ranges), as nftables rules. The password: with
# `passwordHashFile` (an argon2 PHC string from `barnabee-console hash-password`, e.g. a sops
# secret) it is a credential; without, the first start writes a random one to
# /var/lib/barnabee-console/initial-password (`sudo cat` it once; the journal says so).
{
  config,
  lib,
  ...
}: let
  blib = import ./lib.nix {inherit lib;};
  inherit (lib) mkOption types;
  roles = ["memory" "agents" "voice" "inference" "watchdog"];
  # The daemons of this host, read on loopback (a daemon on all addresses is also on loopback).
  local = map (r: {
    role = r;
    host = config.networking.hostName;
    url = "http://${builtins.replaceStrings ["0.0.0.0:" "[::]:"] ["127.0.0.1:" "[::1]:"] config.services.barnabee.${r}.settings.service.listen}";
  }) (lib.filter (r: config.services.barnabee.${r}.enable or false) roles);
  am = config.services.prometheus.alertmanager;
  daemonType = types.submodule {
    options = {
      role = mkOption {
        type = types.enum roles;
        description = "Which daemon it is.";
      };
      host = mkOption {
        type = types.str;
        description = "The host it runs on, as the page shows it.";
      };
      url = mkOption {
        type = types.strMatching "https?://.+";
        description = "Its HTTP base URL.";
      };
    };
  };
in {
  imports = [
    (blib.mkDaemon {
      role = "console";
      port = 7706;
      description = "the Barnabee operator console";
      extraOptions = {
        address = mkOption {
          type = types.str;
          default = "0.0.0.0";
          example = "127.0.0.1";
          description = "Address the console listens on (IPv6 without brackets); port 7706.";
        };
        allowFrom = mkOption {
          type = blib.allowFromType;
          default = ["10.0.0.0/8" "172.16.0.0/12" "192.168.0.0/16" "fd00::/8" "fe80::/10"];
          example = ["192.168.1.0/24"];
          description = ''
            Addresses or prefixes allowed to reach the console (nftables rules in
            networking.firewall.extraInputRules; the appliance profile turns nftables on).
            Default: the private ranges, i.e. the home's LAN. Empty: the port is not opened.
          '';
        };
        passwordHashFile = mkOption {
          type = types.nullOr blib.pathNotInStore;
          default = null;
          description = ''
            File with the console password's argon2 hash (`barnabee-console hash-password`),
            passed as the credential `password-hash`. Null: a random first password is written
            to /var/lib/barnabee-console/initial-password on the first start.
          '';
        };
        remoteDaemons = mkOption {
          type = types.listOf daemonType;
          default = [];
          example = [
            {
              role = "inference";
              host = "beast";
              url = "http://beast.lan:7704";
            }
          ];
          description = "Daemons on other hosts to show (the beelink role adds the beast's inference).";
        };
      };
      extraConfig = cfg:
        lib.mkMerge [
          {
            services.barnabee.console.settings = {
              service.listen = let
                a = cfg.address;
              in "${
                if lib.hasInfix ":" a
                then "[${a}]"
                else a
              }:7706";
              auth =
                if cfg.passwordHashFile != null
                then {
                  password_hash_file = "password-hash";
                  generate_if_missing = false;
                }
                else {
                  password_hash_file = "/var/lib/barnabee-console/password-hash";
                  generate_if_missing = true;
                };
              daemon = local ++ cfg.remoteDaemons;
              pages = lib.mkIf am.enable {
                alertmanager_url = "http://127.0.0.1:${toString am.port}";
              };
            };
            services.barnabee.console.credentials = lib.optionalAttrs (cfg.passwordHashFile != null) {
              password-hash = cfg.passwordHashFile;
            };
            assertions = [
              {
                assertion = cfg.allowFrom == [] || (config.networking.nftables.enable or false);
                message = "services.barnabee.console.allowFrom needs the nftables firewall (networking.nftables.enable = true; the Barnabee appliance profile sets it), or set it to [] and open the port yourself.";
              }
            ];
          }
          (lib.mkIf (cfg.allowFrom != []) {
            networking.firewall.extraInputRules = blib.nftAllowRules {
              addrs = cfg.allowFrom;
              ports = [7706];
              comment = "barnabee-console";
            };
          })
        ];
    })
  ];
}
