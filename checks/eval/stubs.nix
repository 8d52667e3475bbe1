# A tiny stand-in for the parts of NixOS and nixpkgs our modules touch, so the module logic can
# be evaluated with nothing but nixpkgs' `lib` (here: NIXPKGS_LIB in the Nix chroot; in Nix CI:
# pkgs.lib). The real NixOS evaluation is covered by the host-* and vm-* flake checks.
#
# Two rules keep the harness honest (docs/nixos.md "Module-logic tests"):
# - The root freeform type is `lazyAttrsOf`, never `attrsOf`: with `attrsOf`, deciding which
#   top-level keys exist forces every `mkIf cfg.enable { users = ...; }`, which reads `config`,
#   which recurses. Real NixOS declares every namespace, so it cannot happen there.
# - Nothing is written to or read back from a store: the stub TOML generator and runCommand
#   return path-like attribute sets that carry what they were given (`value`, `script`), so a
#   case compares exactly what the module handed to the generator.
{lib}: let
  fakePath = name: contents: "/nix/store/${builtins.substring 0 32 (builtins.hashString "sha256" contents)}-${name}";
  pkg = name: {
    type = "derivation";
    inherit name;
    pname = name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
    override = _: pkg "${name}-custom";
  };
  listOption = elemType:
    lib.mkOption {
      type = lib.types.listOf elemType;
      default = [];
    };
  option = type: default: lib.mkOption {inherit type default;};
  nullOption = type: option (lib.types.nullOr type) null;
  inherit (lib) types;
  # A declared namespace as a submodule without a freeform type: an undeclared option inside it
  # is an error, as on NixOS (the root's freeform type would otherwise swallow it).
  closed = options:
    lib.mkOption {
      type = types.submodule {inherit options;};
      default = {};
    };

  # The monitoring options ../../nixos-modules/monitoring.nix sets, declared with the types and
  # defaults of their nixpkgs declarations (nixos/modules/services/monitoring/prometheus/
  # {default,alertmanager,exporters}.nix, exporters/node.nix, grafana.nix), so a wrong name or
  # type fails here as it would on NixOS. Submodules without a freeform type, as in nixpkgs:
  # an undeclared key is an error. Only the options our module uses are declared.
  monitoringOptions = {
    services.prometheus = closed {
      enable = option types.bool false;
      port = option types.port 9090;
      listenAddress = option types.str "0.0.0.0";
      retentionTime = nullOption types.str;
      checkConfig = option (types.either types.bool (types.enum ["syntax-only"])) true;
      globalConfig = option (types.submodule {
        options = {
          scrape_interval = nullOption types.str;
          scrape_timeout = nullOption types.str;
          evaluation_interval = nullOption types.str;
          external_labels = nullOption (types.attrsOf types.str);
        };
      }) {};
      ruleFiles = listOption types.path;
      scrapeConfigs = listOption (types.submodule {
        options = {
          job_name = lib.mkOption {type = types.str;};
          scrape_interval = nullOption types.str;
          metrics_path = nullOption types.str;
          params = nullOption (types.attrsOf (types.listOf types.str));
          static_configs = nullOption (types.listOf (types.submodule {
            options = {
              targets = lib.mkOption {type = types.listOf types.str;};
              labels = option (types.attrsOf types.str) {};
            };
          }));
        };
      });
      alertmanagers = listOption types.attrs;
      alertmanager = closed {
        enable = option types.bool false;
        listenAddress = option types.str "";
        port = option types.port 9093;
        configuration = nullOption types.attrs;
        configText = nullOption types.lines;
        checkConfig = option types.bool true;
        extraFlags = listOption types.str;
      };
      exporters = closed {
        node = closed {
          enable = option types.bool false;
          port = option types.port 9100;
          listenAddress = option types.str "0.0.0.0";
          extraFlags = listOption types.str;
          openFirewall = option types.bool false;
          enabledCollectors = listOption types.str;
          disabledCollectors = listOption types.str;
        };
      };
    };
    services.grafana = closed {
      enable = option types.bool false;
      settings = option (types.submodule {
        freeformType = types.attrsOf (types.attrsOf types.anything);
        options = {
          server.http_addr = option types.str "127.0.0.1";
          server.http_port = option types.port 3000;
          security.secret_key = nullOption types.str;
        };
      }) {};
      provision = closed {
        enable = option types.bool false;
        datasources = closed {
          settings = nullOption (types.submodule {
            options.datasources = listOption types.attrs;
          });
        };
        dashboards = closed {
          settings = nullOption (types.submodule {
            options.providers = listOption types.attrs;
          });
        };
      };
    };
  };
in {
  inherit pkg;

  pkgs = {
    inherit lib;
    formats.toml = _: {
      type = lib.types.attrsOf lib.types.anything;
      generate = name: value: {
        outPath = fakePath name (builtins.toJSON value);
        inherit name value;
      };
    };
    runCommand = name: env: script: {
      outPath = fakePath name script;
      inherit name env script;
    };
    fetchurl = {
      sha256,
      name ? "download",
      ...
    }: "/nix/store/${builtins.substring 0 32 sha256}-${name}";
    # The default model set (nixos-modules/default-models.nix): the wheel as fetchPypi names it.
    fetchPypi = {
      pname,
      version,
      sha256,
      format ? "setuptools",
      ...
    }: "/nix/store/${builtins.substring 0 32 sha256}-${pname}-${version}${lib.optionalString (format == "wheel") ".whl"}";
    python3.withPackages = f: let
      wanted = f {
        numpy = pkg "python3-numpy";
        onnx = pkg "python3-onnx";
      };
    in
      pkg "python3-with-${lib.concatMapStringsSep "-" (p: p.name or "pkg") wanted}";
    unzip = pkg "unzip";
    coreutils = pkg "coreutils";
    util-linux = pkg "util-linux";
    onnxruntime = pkg "onnxruntime";
    espeak-ng = pkg "espeak-ng";
    sqlite = pkg "sqlite";
    alsa-utils = pkg "alsa-utils";
    barnabee = pkg "barnabee";
    barnabee-replicator = pkg "barnabee-replicator";
    barnabee-memory = pkg "barnabee-memory";
    barnabee-agents = pkg "barnabee-agents";
    barnabee-voice = pkg "barnabee-voice";
    barnabee-inference = pkg "barnabee-inference";
    barnabee-watchdog = pkg "barnabee-watchdog";
    barnabee-console = pkg "barnabee-console";
  };

  nixos = {
    config._module.freeformType = lib.types.lazyAttrsOf lib.types.anything;
    # Declared because several modules define them and they must concatenate as in NixOS.
    options =
      {
        assertions = listOption lib.types.unspecified;
        warnings = listOption lib.types.str;
        systemd.packages = listOption lib.types.unspecified;
        environment.systemPackages = listOption lib.types.unspecified;
        networking.firewall.allowedTCPPorts = listOption lib.types.port;
        networking.firewall.extraInputRules = lib.mkOption {
          type = lib.types.lines;
          default = "";
        };
        # nixos/modules/services/misc/llama-cpp.nix (checked 2026-12-07): `model` and
        # `modelsDir` have no default, so both must be defined.
        services.llama-cpp = closed {
          enable = option types.bool false;
          package = option types.unspecified (pkg "llama-cpp");
          model = lib.mkOption {type = types.nullOr types.path;};
          modelsDir = lib.mkOption {type = types.nullOr types.path;};
          extraFlags = listOption types.str;
          host = option types.str "127.0.0.1";
          port = option types.port 8080;
          openFirewall = option types.bool false;
        };
      }
      // monitoringOptions;
    config.nix.package = pkg "nix";
  };

  # sops-nix's options as the hosts use them (modules/sops/default.nix: `path` defaults to
  # /run/secrets/<name>); only for the cases that evaluate hosts/*.
  sops = {
    options.sops = {
      secrets = lib.mkOption {
        default = {};
        type = lib.types.attrsOf (lib.types.submodule ({name, ...}: {
          freeformType = lib.types.attrsOf lib.types.anything;
          options.path = lib.mkOption {
            type = lib.types.str;
            default = "/run/secrets/${name}";
          };
        }));
      };
      defaultSopsFile = lib.mkOption {type = lib.types.path;};
      age = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = {};
      };
      gnupg = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = {};
      };
    };
  };
}
