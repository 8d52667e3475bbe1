# Shared by the per-daemon modules: the option set every barnabee daemon has and the drop-in
# that points its packaged unit at the generated config. Not a module itself: each daemon file
# calls `mkDaemon { ... }` and gets a module back.
#
# Options (per daemon, under services.barnabee.<role>):
#   enable, package (mkPackageOption), settings (RFC 42, pkgs.formats.toml, typed [service] keys),
#   credentials (name -> absolute path outside the store, passed with LoadCredential=),
#   checkConfig (run `<daemon> --config <file> --check-config` at build time).
# The unit itself (Type=notify, WatchdogSec, hardening) ships in the package
# ($out/lib/systemd/system); here we only add the NixOS drop-in.
{lib}: let
  inherit (lib) mkOption types;

  # Secrets must never be store paths (world-readable). A string, so a Nix path literal is not
  # silently copied into the store; absolute; not under /nix/store.
  pathNotInStore = lib.mkOptionType {
    name = "pathNotInStore";
    description = "absolute path outside the Nix store";
    descriptionClass = "noun";
    check = x: lib.isString x && lib.hasPrefix "/" x && !(lib.hasPrefix builtins.storeDir x);
    merge = lib.mergeEqualOption;
  };

  # A credential name as systemd accepts it in LoadCredential= and as the daemon resolves a
  # relative `*_file` key against $CREDENTIALS_DIRECTORY.
  credentialName = types.strMatching "[A-Za-z0-9_.-]+";

  serviceSettings = port:
    types.submodule {
      freeformType = lib.types.attrsOf lib.types.anything;
      options = {
        listen = mkOption {
          type = types.strMatching "[^ ]+:[0-9]+";
          default = "127.0.0.1:${toString port}";
          description = "Address of the daemon's HTTP listener (API, /health, /metrics).";
        };
        drain_timeout = mkOption {
          type = types.either types.ints.unsigned types.float;
          default = 8;
          description = "Seconds in-flight requests may finish after SIGTERM.";
        };
        log = mkOption {
          default = {};
          description = "Logging.";
          type = types.submodule {
            freeformType = lib.types.attrsOf lib.types.anything;
            options = {
              level = mkOption {
                type = types.enum ["error" "warn" "info" "debug" "trace"];
                default = "info";
                description = "Log level (RUST_LOG overrides).";
              };
              target = mkOption {
                type = types.enum ["auto" "journald" "stderr"];
                default = "auto";
                description = "auto: journald under systemd, else stderr.";
              };
            };
          };
        };
      };
    };
  # The keys that say where one replica lives: [replication]'s own, and each entry of
  # [[replication.also]].
  destinationOptions = cfg: {
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
  };
in {
  inherit pathNotInStore credentialName;

  # Addresses or prefixes a firewall rule may let in (IPv4 or IPv6, optionally /len).
  allowFromType = types.listOf (types.strMatching "[0-9a-fA-F.:/]+");

  # nftables rules (networking.firewall.extraInputRules) letting `addrs` reach `ports`, one
  # rule per address family (nft wants `ip saddr` and `ip6 saddr` apart); "" for no addresses.
  nftAllowRules = {
    addrs,
    ports,
    comment,
  }: let
    v6 = lib.filter (lib.hasInfix ":") addrs;
    v4 = lib.filter (a: !(lib.hasInfix ":" a)) addrs;
    portSet =
      if lib.length ports == 1
      then toString (lib.head ports)
      else "{ ${lib.concatMapStringsSep ", " toString ports} }";
    rule = family: set: lib.optionalString (set != []) "${family} saddr { ${lib.concatStringsSep ", " set} } tcp dport ${portSet} accept comment \"${comment}\"\n";
  in
    rule "ip" v4 + rule "ip6" v6;

  # The [replication] section of a daemon that replicates its own SQLite database (the
  # replicator's embed module): memory (its memories), agents (the cost ledger), the watchdog
  # (the incident log). One replica shaped like a litestream.yml `replicas:` entry; null: no
  # replication. `what` names the data in the descriptions; `extraOptions` adds keys
  # (memory's [replication.verify]).
  replicationOption = {
    cfg,
    what,
    extraOptions ? {},
  }:
    mkOption {
      default = null;
      description = ''
        The [replication] section: one replica of ${what}, shaped like a litestream.yml
        `replicas:` entry. null: no replication (the section is left out of the file).
      '';
      type = types.nullOr (types.submodule {
        freeformType = types.attrsOf types.anything;
        options =
          destinationOptions cfg
          // {
            also = mkOption {
              type = types.listOf (types.submodule {options = destinationOptions cfg;});
              default = [];
              example = lib.literalExpression ''[{type = "file"; path = "/mnt/nas/barnabee";}]'';
              description = ''
                More replicas of ${what} beside this one (`[[replication.also]]`): two places,
                e.g. a NAS or backup-disk directory beside S3. Each is independent: a commit is
                shipped once one replica has it, one down never blocks the others, and it is
                caught up from them when it answers again; each is verified on its own.
                The same destination keys as above; a file replica's directory is made
                writable in the unit like the first one's.
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
                it before serving (a replacement beelink comes up with the old one's ${what}).
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
          }
          // extraOptions;
      });
    };

  # services.barnabee.<role>.replication.secretAccessKeyFile.
  replicationSecretOption = mkOption {
    type = types.nullOr pathNotInStore;
    default = null;
    example = "/run/secrets/s3-secret-access-key";
    description = ''
      File with the S3 secret access key (e.g. a sops-nix secret). Passed as the
      credential `s3-secret-access-key` and named in `[replication] secret_access_key_file`.
    '';
  };

  # What a [replication] section needs around the unit: the assertions that say what to set,
  # the S3 secret as a credential, and a file replica made writable under ProtectSystem=strict.
  replicationConfig = {
    role,
    cfg,
  }: let
    repl = cfg.settings.replication;
    opt = "services.barnabee.${role}";
    # every replica with where its settings sit, for the messages
    destinations = lib.optionals (repl != null) ([
        {
          d = repl;
          at = "${opt}.settings.replication";
        }
      ]
      ++ lib.imap0 (i: d: {
        inherit d;
        at = "${opt}.settings.replication.also.${toString i}";
      })
      repl.also);
    isFile = d: d.type == "file" && d.url == null;
    fileDirs = map (x: x.d.path) (lib.filter (x: isFile x.d && x.d.path != null && lib.hasPrefix "/" x.d.path) destinations);
  in {
    assertions = lib.concatMap ({
      d,
      at,
    }:
      lib.optional (isFile d) {
        assertion = d.path != null && lib.hasPrefix "/" d.path;
        message = "${at}.path must be an absolute directory for a type = \"file\" replica (it is made writable with ReadWritePaths=); got ${builtins.toJSON d.path}.";
      }
      ++ lib.optionals (d.type == "s3") [
        {
          assertion = d.url != null || d.bucket != null;
          message = "${at}: an S3 replica needs `bucket` (or `url = \"s3://bucket/path\"`).";
        }
        {
          assertion = d.access_key_id != null;
          message = "${at}.access_key_id is not set: give the S3 access key id (the secret half goes in ${opt}.replication.secretAccessKeyFile).";
        }
        {
          assertion = cfg.replication.secretAccessKeyFile != null || d.secret_access_key_file != null;
          message = "${opt}.replication.secretAccessKeyFile is not set: point it at the S3 secret key file (e.g. config.sops.secrets.\"s3/secret_access_key\".path).";
        }
      ])
    destinations;
    services.barnabee.${role}.credentials = lib.mkIf (cfg.replication.secretAccessKeyFile != null) {
      s3-secret-access-key = cfg.replication.secretAccessKeyFile;
    };
    # A file replica lives outside the StateDirectory: under ProtectSystem=strict the
    # daemon may write there only when the drop-in says so.
    systemd.services."barnabee-${role}" = lib.mkIf (fileDirs != []) {
      unitConfig.RequiresMountsFor = fileDirs;
      serviceConfig =
        {ReadWritePaths = fileDirs;}
        // lib.optionalAttrs (lib.any (lib.hasPrefix "/var/lib/") fileDirs) {
          # DynamicUser: systemd creates and chowns a StateDirectory; the unit's own
          # barnabee-<role> entry stays (list settings add lines to the drop-in).
          StateDirectory = map (lib.removePrefix "/var/lib/") (lib.filter (lib.hasPrefix "/var/lib/") fileDirs);
        };
    };
  };

  # mkDaemon { role, port, description, settingsOptions ? {}, extraOptions ? {}, extraConfig ? (cfg: {}) }
  mkDaemon = {
    role,
    port,
    description,
    settingsOptions ? {},
    extraOptions ? {},
    extraConfig ? (_cfg: {}),
  }: {
    config,
    pkgs,
    ...
  }: let
    cfg = config.services.barnabee.${role};
    toml = pkgs.formats.toml {};
    unit = "barnabee-${role}";
    exe = lib.getExe' cfg.package unit;
    # TOML has no null: options left at null are left out of the file.
    # (lists too: [[replication.also]] entries are attribute sets in a list)
    dropNulls = v:
      if lib.isAttrs v
      then lib.mapAttrs (_: dropNulls) (lib.filterAttrs (_: x: x != null) v)
      else if lib.isList v
      then map dropNulls v
      else v;
    raw = toml.generate "${role}.toml" (dropNulls cfg.settings);
    # Build-time validation by the daemon itself (the ntpd-rs pattern): a bad key fails the
    # rebuild, not the boot.
    configFile =
      if cfg.checkConfig
      then
        pkgs.runCommand "barnabee-${role}.toml" {preferLocalBuild = true;} ''
          ${exe} --config ${raw} --check-config
          cp ${raw} $out
        ''
      else raw;
  in {
    options.services.barnabee.${role} =
      {
        enable = lib.mkEnableOption description;
        package = lib.mkPackageOption pkgs unit {};
        checkConfig = mkOption {
          type = types.bool;
          default = true;
          description = "Validate the generated config with `${unit} --check-config` at build time.";
        };
        settings = mkOption {
          default = {};
          description = ''
            Contents of /etc/barnabee/${role}.toml (RFC 42). Unknown keys are rejected by the
            daemon (at build time when checkConfig is on). Never put secrets here: use a
            `*_file` key naming a credential.
          '';
          type = types.submodule {
            freeformType = toml.type;
            options =
              {
                service = mkOption {
                  type = serviceSettings port;
                  default = {};
                  description = "The [service] section every daemon shares.";
                };
              }
              // settingsOptions;
          };
        };
        credentials = mkOption {
          type = types.attrsOf pathNotInStore;
          default = {};
          example = {"s3-secret" = "/run/secrets/s3-secret-access-key";};
          description = ''
            Secret files handed to the daemon with systemd LoadCredential= (name -> path, e.g. a
            sops-nix secret). The daemon reads them as $CREDENTIALS_DIRECTORY/<name>; a relative
            `*_file` key in the settings names the credential.
          '';
        };
        configFile = mkOption {
          type = types.path;
          readOnly = true;
          default = configFile;
          defaultText = lib.literalMD "the validated TOML rendering of `settings`";
          description = "The generated (and validated) config file.";
        };
      }
      // extraOptions;

    config = lib.mkIf cfg.enable (lib.mkMerge [
      {
        assertions =
          lib.mapAttrsToList (name: _: {
            assertion = builtins.match "[A-Za-z0-9_.-]+" name != null;
            message = "services.barnabee.${role}.credentials.${name}: a credential name may only contain letters, digits, '_', '.' and '-'.";
          })
          cfg.credentials;

        # The unit file comes from the package; this is a drop-in (overrides.conf).
        systemd.packages = [cfg.package];
        environment.etc."barnabee/${role}.toml".source = cfg.configFile;
        systemd.services.${unit} = {
          overrideStrategy = "asDropin";
          wantedBy = ["multi-user.target"];
          serviceConfig = {
            # Reset the packaged ExecStart, then point at the store config: a changed config
            # changes the unit, so `switch` restarts the daemon.
            ExecStart = ["" "${exe} --config ${cfg.configFile}"];
            LoadCredential = lib.mapAttrsToList (name: path: "${name}:${path}") cfg.credentials;
            # A default for each credential (systemd.exec(5): SetCredential= "will act as default
            # if the former cannot be retrieved ... not considered fatal"): one newline, which
            # the daemons read as empty (a trailing newline is trimmed). Not an empty value:
            # systemd 252 rejects `SetCredential=ID:` ("Invalid syntax, ignoring"), and the
            # missing file is then fatal (checks/systemd-vm scenario credentials). Before the
            # host is provisioned (first boot: sops-nix has no key yet, /run/secrets/... is
            # missing) the daemon starts and reports the credential "not provisioned" in
            # /health (degraded) instead of the unit failing with status 243/CREDENTIALS, so the
            # health gate can tell "not provisioned yet" from "broken".
            SetCredential = lib.mapAttrsToList (name: _: "${name}:\\n") cfg.credentials;
          };
        };
      }
      (extraConfig cfg)
    ]);
  };
}
