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
in {
  inherit pathNotInStore credentialName;

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
    raw = toml.generate "${role}.toml" (lib.filterAttrsRecursive (_: v: v != null) cfg.settings);
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
