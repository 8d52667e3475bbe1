# services.barnabee.memory: the long-term memory daemon (SQLite + embedded replication).
{
  config,
  lib,
  ...
}: let
  blib = import ./lib.nix {inherit lib;};
  inherit (lib) mkOption types;
  cfg = config.services.barnabee.memory;
  repl = cfg.settings.replication;
  wd = config.services.barnabee.watchdog;
  # The watchdog's notifier runs on this host: memory reports failed backup verifications to it.
  notifierOn = wd.enable && (wd.notify.homeAssistant.enable || wd.notify.email.enable || wd.notify.webhook.enable);
  fileReplica = repl != null && repl.type == "file" && repl.path != null && lib.hasPrefix "/" repl.path;
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
        replication = mkOption {
          default = null;
          description = ''
            The [replication] section: one replica shaped like a litestream.yml `replicas:`
            entry. null: no replication (the section is left out of the file).
          '';
          type = types.nullOr (types.submodule {
            freeformType = types.attrsOf types.anything;
            options = {
              type = mkOption {
                type = types.enum ["s3" "file"];
                description = "Replica kind.";
              };
              url = mkOption {
                type = types.nullOr types.str;
                default = null;
                example = "s3://barnabee/memory";
                description = "Alternative to type/bucket/path.";
              };
              bucket = mkOption {
                type = types.nullOr types.str;
                default = null;
                description = "S3 bucket.";
              };
              path = mkOption {
                type = types.nullOr types.str;
                default = null;
                description = ''
                  S3 key prefix, or, for type = file, the replica directory: an absolute path,
                  made writable in the unit (ReadWritePaths=, RequiresMountsFor=) since
                  ProtectSystem=strict hides everything else. The directory must exist and be
                  writable by the daemon's DynamicUser: under /var/lib/ it is created and owned
                  for you (an extra StateDirectory=); elsewhere (a backup disk) create it yourself.
                '';
              };
              endpoint = mkOption {
                type = types.nullOr types.str;
                default = null;
                example = "https://s3.eu-central-003.backblazeb2.com";
                description = "S3 endpoint (Garage, B2, MinIO); null: AWS.";
              };
              region = mkOption {
                type = types.nullOr types.str;
                default = null;
                description = "S3 region.";
              };
              force_path_style = mkOption {
                type = types.bool;
                default = false;
                description = "Path-style addressing (Garage, MinIO).";
              };
              access_key_id = mkOption {
                type = types.nullOr types.str;
                default = null;
                description = "S3 access key id (not secret; the secret key is a credential).";
              };
              secret_access_key_file = mkOption {
                type = types.nullOr types.str;
                # The default, not a definition from outside the submodule: defining it would
                # turn a null `replication` into a submodule without `type` (a throw instead of
                # the "what to set" assertion, nix-review D5).
                default =
                  if cfg.replication.secretAccessKeyFile != null
                  then "s3-secret-access-key"
                  else null;
                defaultText = lib.literalMD "`\"s3-secret-access-key\"` when `replication.secretAccessKeyFile` is set, else null";
                description = ''
                  Credential name (relative: $CREDENTIALS_DIRECTORY) of the S3 secret key. Set
                  automatically when `replication.secretAccessKeyFile` is given.
                '';
              };
              sync_interval = mkOption {
                type = types.either types.ints.positive types.float;
                default = 1;
                description = "Seconds between WAL shipments.";
              };
              restore_if_missing = mkOption {
                type = types.nullOr types.bool;
                default = null;
                description = ''
                  On start, when the database file is missing and the replica has data, restore
                  it before serving (a replacement beelink comes up with the old one's memories).
                  null: the daemon's default, true.
                '';
              };
              shutdown_timeout = mkOption {
                type = types.nullOr (types.either types.ints.unsigned types.float);
                default = null;
                description = ''
                  Seconds, after the HTTP drain on SIGTERM, to ship what is already committed.
                  Keep drain_timeout + shutdown_timeout below the unit's TimeoutStopSec.
                  null: the daemon's default, 5.
                '';
              };
              fail_after_errors = mkOption {
                type = types.nullOr types.ints.positive;
                default = null;
                description = ''
                  /health's `replication` check fails (non-critical: degraded) after this many
                  failed uploads in a row. null: the daemon's default, 3.
                '';
              };
              snapshot_interval = mkOption {
                type = types.nullOr (types.either types.ints.positive types.float);
                default = null;
                example = 86400;
                description = ''
                  Seconds between level-9 snapshots (the whole database) on the replica
                  (litestream.yml `snapshot.interval`). null: the daemon's default, 24 h.
                '';
              };
              snapshot_retention = mkOption {
                type = types.nullOr (types.either types.ints.positive types.float);
                default = null;
                example = 2678400;
                description = ''
                  Seconds that snapshots and the compacted files between them are kept: how far
                  back a point-in-time restore reaches (litestream.yml `snapshot.retention`).
                  The restorable window is between retention minus snapshot_interval and
                  retention. null: the daemon's default, 31 days (at least 30 days restorable
                  with daily snapshots). Storage cost: see crates/memory/README.md
                  "Retention".
                '';
              };
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
          });
        };
      };
      extraOptions = {
        replication.secretAccessKeyFile = mkOption {
          type = types.nullOr blib.pathNotInStore;
          default = null;
          example = "/run/secrets/s3-secret-access-key";
          description = ''
            File with the S3 secret access key (e.g. a sops-nix secret). Passed as the
            credential `s3-secret-access-key` and named in `[replication] secret_access_key_file`.
          '';
        };
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
      extraConfig = cfg: {
        assertions =
          lib.optional (repl != null && repl.type == "file") {
            assertion = repl.path != null && lib.hasPrefix "/" repl.path;
            message = "services.barnabee.memory.settings.replication.path must be an absolute directory for a type = \"file\" replica (it is made writable with ReadWritePaths=); got ${builtins.toJSON repl.path}.";
          }
          ++ lib.optionals (repl != null && repl.type == "s3") [
            {
              assertion = repl.url != null || repl.bucket != null;
              message = "services.barnabee.memory.settings.replication: an S3 replica needs `bucket` (or `url = \"s3://bucket/path\"`).";
            }
            {
              assertion = repl.access_key_id != null;
              message = "services.barnabee.memory.settings.replication.access_key_id is not set: give the S3 access key id (the secret half goes in services.barnabee.memory.replication.secretAccessKeyFile).";
            }
            {
              assertion = cfg.replication.secretAccessKeyFile != null || repl.secret_access_key_file != null;
              message = "services.barnabee.memory.replication.secretAccessKeyFile is not set: point it at the S3 secret key file (e.g. config.sops.secrets.\"s3/secret_access_key\".path).";
            }
          ];
        services.barnabee.memory.credentials = lib.mkIf (cfg.replication.secretAccessKeyFile != null) {
          s3-secret-access-key = cfg.replication.secretAccessKeyFile;
        };
        # A file replica lives outside the StateDirectory: under ProtectSystem=strict the
        # daemon may write there only when the drop-in says so.
        systemd.services.barnabee-memory = lib.mkIf fileReplica {
          unitConfig.RequiresMountsFor = [repl.path];
          serviceConfig =
            {ReadWritePaths = [repl.path];}
            // lib.optionalAttrs (lib.hasPrefix "/var/lib/" repl.path) {
              # DynamicUser: systemd creates and chowns a StateDirectory; the unit's own
              # barnabee-memory entry stays (list settings add lines to the drop-in).
              StateDirectory = [(lib.removePrefix "/var/lib/" repl.path)];
            };
        };
        system.preSwitchChecks = lib.mkIf cfg.preSwitchCheck {
          barnabee-memory-schema = ''
            db=${lib.escapeShellArg cfg.settings.database.path}
            if [ -e "$db" ]; then
              ${lib.getExe' cfg.package "barnabee-memory"} check-compat --db "$db"
            fi
          '';
        };
      };
    })
  ];
}
