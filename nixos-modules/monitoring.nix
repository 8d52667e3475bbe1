# barnabee.monitoring: Prometheus, Alertmanager and node_exporter for the appliance (imported by
# ./default.nix; everything off by default: nixosModules.appliance turns node_exporter on, the
# beelink role the monitoring server). What runs where (docs/nixos.md "Monitoring and notifications"):
#
#   beelink (barnabee.monitoring.enable, on by default in the beelink role):
#     Prometheus      127.0.0.1:9090, 30 days of samples, ./monitoring/alerts.yml
#     Alertmanager    127.0.0.1:9093, ./monitoring/alertmanager.yml: routes to the watchdog's
#                     notifier (http://127.0.0.1:7705/v1/notify/alertmanager)
#     node_exporter   127.0.0.1:9100
#     Grafana         optional (barnabee.monitoring.grafana.enable), 127.0.0.1:3000
#   beast:
#     node_exporter   on the LAN, port 9100, open only to barnabee.monitoring.nodeExporter.allowFrom
#                     (nftables, like inference's allowFrom); no Prometheus.
#
# Scrape jobs: `barnabee-<role>` for every enabled daemon of this host (on loopback) and of the
# remote hosts (barnabee.monitoring.remoteHosts: the beelink role adds the beast's inference,
# the one beast daemon that serves the LAN), `node` for every node_exporter; every target has a
# `host` label ("beelink" | "beast"). The beast's watchdog listens on loopback only (its unit
# has IPAddressDeny=any): it is not scraped; its unit state reaches Prometheus through the
# beast's node_exporter systemd collector (node_systemd_unit_state{host="beast"}).
#
# nixpkgs declarations read (docs/nixos.md table):
#   services.prometheus.{enable,listenAddress (str, default "0.0.0.0", no port: an
#     assertion rejects "addr:port"),port (9090),retentionTime (nullOr str),globalConfig,
#     ruleFiles (listOf path, each checked with `promtool check rules` at build time),
#     scrapeConfigs (listOf scrape_config: job_name, static_configs [{targets, labels}]),
#     alertmanagers (listOf attrs),checkConfig (bool or "syntax-only", default true)}
#     nixos/modules/services/monitoring/prometheus/default.nix
#   services.prometheus.alertmanager.{enable,listenAddress (str, default "": all interfaces),
#     port (9093),configText (nullOr lines; run through envsubst, `$` must be `$$`),
#     checkConfig (bool, default true: `amtool check-config`),extraFlags}
#     nixos/modules/services/monitoring/prometheus/alertmanager.nix
#   services.prometheus.exporters.node.{enable,listenAddress (default "0.0.0.0"),port (9100),
#     enabledCollectors,extraFlags}
#     nixos/modules/services/monitoring/prometheus/exporters.nix, exporters/node.nix
#   services.grafana.{enable,settings.server.{http_addr,http_port},
#     settings.security.secret_key (nullOr str, no default since 26.05: asserted),
#     provision.{enable,datasources.settings.datasources,dashboards.settings.providers}}
#     nixos/modules/services/monitoring/grafana.nix
{
  config,
  lib,
  pkgs,
  ...
}: let
  blib = import ./lib.nix {inherit lib;};
  inherit (lib) mkOption types;
  cfg = config.barnabee.monitoring;
  roles = ["memory" "agents" "voice" "inference" "watchdog"];
  nodeCfg = config.services.prometheus.exporters.node;

  address = types.strMatching "[0-9a-fA-F.:/]+";
  # A daemon may listen on all addresses (the beast's inference); Prometheus scrapes it on
  # loopback.
  loopback = builtins.replaceStrings ["0.0.0.0:" "[::]:"] ["127.0.0.1:" "[::1]:"];
  target = host: addr: {
    targets = [addr];
    labels.host = host;
  };

  localTargets = role:
    lib.optional (config.services.barnabee.${role}.enable or false)
    (target cfg.host (loopback config.services.barnabee.${role}.settings.service.listen));
  remoteTargets = role:
    lib.concatLists (lib.mapAttrsToList (host: r:
      lib.optional (r.daemons ? ${role}) (target host "${r.address}:${toString r.daemons.${role}}"))
    cfg.remoteHosts);
  nodeTargets =
    lib.optional nodeCfg.enable (target cfg.host "127.0.0.1:${toString nodeCfg.port}")
    ++ lib.concatLists (lib.mapAttrsToList (host: r:
      lib.optional (r.nodeExporterPort != null) (target host "${r.address}:${toString r.nodeExporterPort}"))
    cfg.remoteHosts);
  job = name: static_configs:
    lib.optional (static_configs != []) {
      job_name = name;
      inherit static_configs;
    };

  # nftables rules for the exposed node_exporter.
  allowRules = addrs: port:
    blib.nftAllowRules {
      inherit addrs;
      ports = [port];
      comment = "barnabee-node-exporter";
    };
  exposed = cfg.nodeExporter.allowFrom != [];
in {
  options.barnabee.monitoring = {
    enable = mkOption {
      type = types.bool;
      default = false;
      description = ''
        Run the monitoring server on this host: Prometheus (127.0.0.1:9090, the Barnabee alert
        rules, `retentionTime`) scraping every Barnabee daemon and node_exporter of this host and
        of `remoteHosts`, and Alertmanager (127.0.0.1:9093) routing alerts to the watchdog's
        notifier. On by default in the beelink role, off elsewhere.
      '';
    };
    host = mkOption {
      type = types.str;
      default = config.networking.hostName or "nixos";
      defaultText = lib.literalMD "`networking.hostName`; the roles set `beelink` / `beast`";
      description = "The `host` label of this host's scrape targets (the alert rules and the dashboard use it).";
    };
    retentionTime = mkOption {
      type = types.str;
      default = "30d";
      description = "How long Prometheus keeps samples (services.prometheus.retentionTime).";
    };
    scrapeInterval = mkOption {
      type = types.str;
      default = "15s";
      description = "Prometheus' global scrape and rule evaluation interval.";
    };
    remoteHosts = mkOption {
      default = {};
      example = lib.literalExpression ''{ beast = { address = "beast.lan"; daemons.inference = 7704; }; }'';
      description = ''
        Other hosts this host's Prometheus scrapes, by `host` label. Only daemons that listen on
        the LAN can be listed (the beast's inference does; every other daemon listens on
        127.0.0.1). The beelink role adds the beast from `barnabee.beelink.inferenceHost`.
      '';
      type = types.attrsOf (types.submodule {
        options = {
          address = mkOption {
            type = types.str;
            example = "beast.lan";
            description = "Host name or address (an IPv6 address in brackets).";
          };
          daemons = mkOption {
            type = types.attrsOf types.port;
            default = {};
            example = {inference = 7704;};
            description = "Daemon role -> port of its HTTP listener (/metrics); scraped as job `barnabee-<role>`.";
          };
          nodeExporterPort = mkOption {
            type = types.nullOr types.port;
            default = 9100;
            description = "The host's node_exporter port (job `node`); null: not scraped.";
          };
        };
      });
    };
    nodeExporter = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          node_exporter (port 9100) with the systemd collector for the Barnabee and monitoring
          units. Listens on 127.0.0.1 unless `allowFrom` is set. On by default in the appliance
          profile (both hosts).
        '';
      };
      allowFrom = mkOption {
        type = types.listOf address;
        default = [];
        example = ["192.168.1.20"];
        description = ''
          Addresses (or prefixes) allowed to reach node_exporter from the LAN: the host running
          Prometheus. Non-empty: node_exporter listens on all addresses and nftables accepts
          its port from these only. The beast role defaults it to `barnabee.beast.clients`
          (the beelink and the Home Assistant host); narrow it to the beelink in site.nix.
        '';
      };
    };
    grafana = {
      enable = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Grafana on 127.0.0.1:3000 with Prometheus as its data source and the Barnabee
          dashboard provisioned (needs `monitoring.enable` and `grafana.secretKeyFile`).
        '';
      };
      secretKeyFile = mkOption {
        type = types.nullOr blib.pathNotInStore;
        default = null;
        example = "/run/secrets/grafana/secret_key";
        description = ''
          File with Grafana's secret key (services.grafana.settings.security.secret_key has no
          default since nixpkgs 26.05), read by the grafana user through Grafana's file provider:
          a sops secret with `owner = "grafana"`.
        '';
      };
    };
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = cfg.nodeExporter.enable && exposed -> config.networking.nftables.enable or false;
          message = "barnabee.monitoring.nodeExporter.allowFrom needs the nftables firewall (networking.nftables.enable = true; the Barnabee appliance profile sets it).";
        }
        {
          assertion = cfg.grafana.enable -> cfg.enable;
          message = "barnabee.monitoring.grafana.enable needs barnabee.monitoring.enable (Grafana reads the local Prometheus).";
        }
        {
          assertion = cfg.grafana.enable -> cfg.grafana.secretKeyFile != null;
          message = "barnabee.monitoring.grafana.enable is on but barnabee.monitoring.grafana.secretKeyFile is not set: give a sops secret (owner = \"grafana\") holding Grafana's secret key (`openssl rand -hex 32`).";
        }
      ];
    }

    (lib.mkIf cfg.nodeExporter.enable {
      services.prometheus.exporters.node = {
        enable = true;
        listenAddress =
          if !exposed
          then "127.0.0.1"
          else if lib.any (lib.hasInfix ":") cfg.nodeExporter.allowFrom
          then "[::]"
          else "0.0.0.0";
        # The units' state (node_systemd_unit_state), so a host whose daemon cannot be scraped
        # (the beast's watchdog) still shows whether it runs. The pattern is anchored by
        # node_exporter; `[.]`, not `\.`: systemd would read a backslash in ExecStart= as an
        # escape.
        enabledCollectors = ["systemd"];
        extraFlags = ["--collector.systemd.unit-include=(barnabee-.+|prometheus|alertmanager|grafana)[.]service"];
      };
      networking.firewall.extraInputRules = lib.mkIf exposed (allowRules cfg.nodeExporter.allowFrom nodeCfg.port);
    })

    (lib.mkIf cfg.enable {
      services.prometheus = {
        enable = true;
        listenAddress = "127.0.0.1";
        port = 9090;
        inherit (cfg) retentionTime;
        globalConfig = {
          scrape_interval = cfg.scrapeInterval;
          evaluation_interval = cfg.scrapeInterval;
        };
        ruleFiles = [./monitoring/alerts.yml];
        scrapeConfigs =
          lib.concatMap (role: job "barnabee-${role}" (localTargets role ++ remoteTargets role)) roles
          ++ job "node" nodeTargets;
        alertmanagers = [
          {
            static_configs = [
              {
                targets = ["127.0.0.1:${toString config.services.prometheus.alertmanager.port}"];
              }
            ];
          }
        ];
      };

      services.prometheus.alertmanager = {
        enable = true;
        listenAddress = "127.0.0.1";
        port = 9093;
        # The file routes every alert to the watchdog's notifier (HA, e-mail, webhook are the
        # watchdog's [notify] channels, not Alertmanager receivers). `amtool check-config` runs
        # at build time (checkConfig, default true): the file names no credential file.
        configText = builtins.readFile ./monitoring/alertmanager.yml;
        # No HA cluster: without this Alertmanager gossips on 0.0.0.0:9094 and refuses to start
        # on a host without a private address.
        extraFlags = ["--cluster.listen-address="];
      };
    })

    (lib.mkIf (cfg.enable && cfg.grafana.enable) {
      services.grafana = {
        enable = true;
        settings.server = {
          http_addr = "127.0.0.1";
          http_port = 3000;
        };
        settings.security.secret_key = lib.mkIf (cfg.grafana.secretKeyFile != null) "$__file{${cfg.grafana.secretKeyFile}}";
        provision = {
          enable = true;
          datasources.settings.datasources = [
            {
              name = "Prometheus";
              type = "prometheus";
              url = "http://127.0.0.1:${toString config.services.prometheus.port}";
              isDefault = true;
            }
          ];
          # Grafana's file provider loads the *.json files of a directory: one with only ours.
          dashboards.settings.providers = [
            {
              name = "barnabee";
              type = "file";
              options.path = pkgs.runCommand "barnabee-grafana-dashboards" {preferLocalBuild = true;} ''
                mkdir $out
                cp ${./monitoring/grafana-dashboard.json} $out/barnabee.json
              '';
            }
          ];
        };
      };
    })
  ];
}
