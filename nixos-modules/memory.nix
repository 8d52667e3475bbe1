# services.barnabee.memory: the long-term memory daemon (SQLite + embedded replication).
{
  config,
  lib,
  ...
}: let
  blib = import ./lib.nix {inherit lib;};
  inherit (lib) mkOption types;
  cfg = config.services.barnabee.memory;
  wd = config.services.barnabee.watchdog;
  # The watchdog's notifier runs on this host: memory reports failed backup verifications to it.
  notifierOn = wd.enable && (wd.notify.homeAssistant.enable || wd.notify.email.enable || wd.notify.webhook.enable);
in {
  imports = [
    (blib.mkDaemon {
      role = "memory";
      port = 7701;
      description = "the Barnabee memory daemon";
      settingsOptions = {
        database = mkOption {
          default = {};
          description = "The [database] section.";
          type = types.submodule {
            freeformType = types.attrsOf types.anything;
            options.path = mkOption {
              type = types.strMatching "/.*";
              default = "/var/lib/barnabee-memory/memory.db";
              description = "The SQLite file (inside the unit's StateDirectory).";
            };
          };
        };
        replication = blib.replicationOption {
          inherit cfg;
          what = "the memories";
          extraOptions = {
            verify = mkOption {
              default = {};
              description = ''
                The [replication.verify] section: the daily restore verification (`interval`,
                `max_age`, `first_after`, `temp_dir`, in seconds/paths; see
                crates/memory/memory.example.toml).
              '';
              type = types.submodule {
                freeformType = types.attrsOf types.anything;
                options.notify_url = mkOption {
                  type = types.nullOr types.str;
                  default =
                    if notifierOn
                    then "http://${wd.settings.service.listen}/v1/notify/alertmanager"
                    else null;
                  defaultText = lib.literalMD "the watchdog's `/v1/notify/alertmanager` when the watchdog's notifier (`services.barnabee.watchdog.notify.*`) is enabled on this host, else null";
                  description = ''
                    Where a failed verification is reported (an Alertmanager-style webhook
                    payload, alert `BarnabeeBackupVerifyFailing`); the journal and the metric
                    `barnabee_backup_verify_failures_total` have it either way.
                  '';
                };
              };
            };
          };
        };
      };
      extraOptions = {
        replication.secretAccessKeyFile = blib.replicationSecretOption;
        preSwitchCheck = mkOption {
          type = types.bool;
          default = true;
          description = ''
            Refuse `switch-to-configuration` into a generation whose barnabee-memory cannot
            read the on-disk database (`barnabee-memory check-compat --db ...`). Each
            generation carries its own check, so an older generation refuses an unsafe downgrade.
            Override once with NIXOS_NO_CHECK=1.
          '';
        };
      };
      extraConfig = cfg:
        lib.mkMerge [
          (blib.replicationConfig {
            role = "memory";
            inherit cfg;
          })
          {
            system.preSwitchChecks = lib.mkIf cfg.preSwitchCheck {
              barnabee-memory-schema = ''
                db=${lib.escapeShellArg cfg.settings.database.path}
                if [ -e "$db" ]; then
                  ${lib.getExe' cfg.package "barnabee-memory"} check-compat --db "$db"
                fi
              '';
            };
          }
        ];
    })
  ];
}
