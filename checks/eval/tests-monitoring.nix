# Module-logic tests of monitoring (../../nixos-modules/monitoring.nix: Prometheus, Alertmanager,
# node_exporter, Grafana) and of the watchdog's notifier options ([notify] in watchdog.toml).
# The nixpkgs options they set are declared in ./stubs.nix with their nixpkgs types. Run by
# ./run.nix with the other case files.
{lib}: let
  h = import ./harness.nix {inherit lib;};
  inherit (h) evalHost evalAppliance failed rejects renderedOf serviceOf;
  site = import ../site-test.nix;

  beelink = evalHost "beelink" [site.beelink];
  beast = evalHost "beast" [site.beast];
  monitoringFiles = ../../nixos-modules/monitoring;

  # A scrape config as Prometheus gets it (nixpkgs drops the null options the same way:
  # filterValidPrometheus).
  jobs = cfg:
    map (j: {
      inherit (j) job_name;
      static_configs = map (s: {inherit (s) targets labels;}) j.static_configs;
    })
    cfg.services.prometheus.scrapeConfigs;
  at = host: target: {
    targets = [target];
    labels.host = host;
  };

  # The beelink with every notification channel set.
  notifying = evalHost "beelink" [
    site.beelink
    {
      services.barnabee.agents.settings.home_assistant.url = "http://ha.invalid:8123";
      services.barnabee.watchdog.notify = {
        homeAssistant = {
          enable = true;
          services = ["mobile_app_anna_phone"];
          minSeverity = "critical";
        };
        email = {
          enable = true;
          host = "smtp.invalid";
          port = 465;
          security = "tls";
          username = "barnabee@example.org";
          passwordFile = "/run/secrets/notify/smtp_password";
          from = "Barnabee <barnabee@example.org>";
          to = ["anna@example.org" "ben@example.org"];
        };
        webhook = {
          enable = true;
          url = "https://ntfy.invalid/barnabee";
          tokenFile = "/run/secrets/notify/webhook_token";
          minSeverity = "info";
        };
      };
    }
  ];
  withNotify = extra: evalHost "beelink" [site.beelink {services.barnabee.watchdog.notify = extra;}];
in [
  {
    name = "beelink host: monitoring on by default: Prometheus on 127.0.0.1:9090 (30 days, the alert rules), Alertmanager on 127.0.0.1:9093 (alertmanager.yml, no cluster port), node_exporter on loopback";
    expr = let
      p = beelink.services.prometheus;
      am = p.alertmanager;
      node = p.exporters.node;
    in {
      monitoring = beelink.barnabee.monitoring.enable;
      prometheus = {
        inherit (p) enable listenAddress port retentionTime;
        rules = map toString p.ruleFiles;
        inherit (p) alertmanagers;
        interval = {inherit (p.globalConfig) scrape_interval evaluation_interval;};
      };
      alertmanager = {
        inherit (am) enable listenAddress port extraFlags checkConfig;
        config = am.configText == builtins.readFile (monitoringFiles + "/alertmanager.yml");
        routesToNotifier = lib.hasInfix "http://127.0.0.1:7705/v1/notify/alertmanager" am.configText;
      };
      node = {
        inherit (node) enable listenAddress port enabledCollectors;
        unitInclude = node.extraFlags;
      };
      grafana = beelink.services.grafana.enable or false;
      nodeRule = lib.hasInfix "9100" beelink.networking.firewall.extraInputRules;
    };
    expected = {
      monitoring = true;
      prometheus = {
        enable = true;
        listenAddress = "127.0.0.1";
        port = 9090;
        retentionTime = "30d";
        rules = [(toString (monitoringFiles + "/alerts.yml"))];
        alertmanagers = [{static_configs = [{targets = ["127.0.0.1:9093"];}];}];
        interval = {
          scrape_interval = "15s";
          evaluation_interval = "15s";
        };
      };
      alertmanager = {
        enable = true;
        listenAddress = "127.0.0.1";
        port = 9093;
        extraFlags = ["--cluster.listen-address="];
        checkConfig = true;
        config = true;
        routesToNotifier = true;
      };
      node = {
        enable = true;
        listenAddress = "127.0.0.1";
        port = 9100;
        enabledCollectors = ["systemd"];
        unitInclude = ["--collector.systemd.unit-include=(barnabee-.+|prometheus|alertmanager|grafana)[.]service"];
      };
      grafana = false;
      nodeRule = false;
    };
  }
  {
    name = "beelink host: every daemon of both hosts scraped as barnabee-<role> with its host label (the beast's inference at inferenceHost:7704), both node_exporters as node";
    expr = jobs beelink;
    expected = [
      {
        job_name = "barnabee-memory";
        static_configs = [(at "beelink" "127.0.0.1:7701")];
      }
      {
        job_name = "barnabee-agents";
        static_configs = [(at "beelink" "127.0.0.1:7702")];
      }
      {
        job_name = "barnabee-voice";
        static_configs = [(at "beelink" "127.0.0.1:7703")];
      }
      {
        job_name = "barnabee-inference";
        static_configs = [(at "beast" "beast.invalid:7704")];
      }
      {
        job_name = "barnabee-watchdog";
        static_configs = [(at "beelink" "127.0.0.1:7705")];
      }
      {
        job_name = "node";
        static_configs = [(at "beelink" "127.0.0.1:9100") (at "beast" "beast.invalid:9100")];
      }
    ];
  }
  {
    name = "beast host: node_exporter on the LAN for the listed clients only (nftables), no Prometheus, no Alertmanager, no port open to all";
    expr = {
      monitoring = beast.barnabee.monitoring.enable;
      prometheus = beast.services.prometheus.enable;
      alertmanager = beast.services.prometheus.alertmanager.enable;
      node = {inherit (beast.services.prometheus.exporters.node) enable listenAddress port;};
      rule = lib.hasInfix ''ip saddr { 192.0.2.10, 192.0.2.11 } tcp dport 9100 accept comment "barnabee-node-exporter"'' beast.networking.firewall.extraInputRules;
      openToAll = beast.networking.firewall.allowedTCPPorts;
      failed = failed beast;
    };
    expected = {
      monitoring = false;
      prometheus = false;
      alertmanager = false;
      node = {
        enable = true;
        listenAddress = "0.0.0.0";
        port = 9100;
      };
      rule = true;
      openToAll = [];
      failed = [];
    };
  }
  {
    name = "monitoring off: no Prometheus, no Alertmanager, no scrape job; node_exporter off too when asked";
    expr =
      map (extra: let
        c = evalHost "beelink" [site.beelink {barnabee.monitoring = extra;}];
      in {
        prometheus = c.services.prometheus.enable;
        alertmanager = c.services.prometheus.alertmanager.enable;
        node = c.services.prometheus.exporters.node.enable;
        grafana = c.services.grafana.enable or false;
        scrape = c.services.prometheus.scrapeConfigs;
        failed = failed c;
      }) [
        {enable = false;}
        {
          enable = false;
          nodeExporter.enable = false;
        }
      ];
    expected = [
      {
        prometheus = false;
        alertmanager = false;
        node = true;
        grafana = false;
        scrape = [];
        failed = [];
      }
      {
        prometheus = false;
        alertmanager = false;
        node = false;
        grafana = false;
        scrape = [];
        failed = [];
      }
    ];
  }
  {
    name = "appliance alone (nixosModules.appliance) with monitoring on: evaluates, scrapes only its node_exporter when no daemon is enabled";
    expr = let
      c = evalAppliance [
        {
          barnabee.operatorKeys = ["ssh-ed25519 AAAA test"];
          barnabee.monitoring.enable = true;
        }
      ];
    in {
      scrape = jobs c;
      failed = failed c;
      rules = map toString c.services.prometheus.ruleFiles;
    };
    expected = {
      scrape = [
        {
          job_name = "node";
          static_configs = [(at "nixos" "127.0.0.1:9100")];
        }
      ];
      failed = [];
      rules = [(toString (monitoringFiles + "/alerts.yml"))];
    };
  }
  {
    name = "appliance with monitoring and a daemon on the LAN: scraped on loopback, labelled with the host name";
    expr = lib.head (jobs (evalAppliance [
      {
        networking.hostName = "kitchen";
        barnabee.monitoring.enable = true;
        services.barnabee.inference = {
          enable = true;
          settings.service.listen = "0.0.0.0:7704";
        };
      }
    ]));
    expected = {
      job_name = "barnabee-inference";
      static_configs = [(at "kitchen" "127.0.0.1:7704")];
    };
  }
  {
    name = "appliance: alert rules, Alertmanager config and dashboard installed under /etc/barnabee/monitoring, monitoring on or off";
    expr =
      map (c: lib.attrNames (lib.filterAttrs (n: _: lib.hasPrefix "barnabee/monitoring/" n) c.environment.etc))
      [beelink beast];
    expected = lib.genList (_: ["barnabee/monitoring/alertmanager.yml" "barnabee/monitoring/alerts.yml" "barnabee/monitoring/grafana-dashboard.json"]) 2;
  }
  {
    name = "node_exporter: IPv6 scrapers listen on [::] with an ip6 rule; allowFrom without nftables fails with what to set";
    expr = let
      v6 = evalAppliance [{barnabee.monitoring.nodeExporter.allowFrom = ["fd00::20" "192.0.2.10"];}];
      noNft = evalAppliance [
        {
          barnabee.monitoring.nodeExporter.allowFrom = ["192.0.2.10"];
          networking.nftables.enable = lib.mkForce false;
        }
      ];
    in {
      listen = v6.services.prometheus.exporters.node.listenAddress;
      rules = v6.networking.firewall.extraInputRules;
      noNft = lib.any (lib.hasInfix "barnabee.monitoring.nodeExporter.allowFrom needs the nftables firewall") (failed noNft);
    };
    expected = {
      listen = "[::]";
      rules = ''
        ip saddr { 192.0.2.10 } tcp dport 9100 accept comment "barnabee-node-exporter"
        ip6 saddr { fd00::20 } tcp dport 9100 accept comment "barnabee-node-exporter"
      '';
      noNft = true;
    };
  }
  {
    name = "Grafana (optional): loopback, the local Prometheus as data source, the dashboard provisioned, secret key through the file provider; without a key file: what to set";
    expr = let
      c = evalHost "beelink" [
        site.beelink
        {
          barnabee.monitoring.grafana = {
            enable = true;
            secretKeyFile = "/run/secrets/grafana/secret_key";
          };
        }
      ];
      g = c.services.grafana;
      noKey = evalHost "beelink" [site.beelink {barnabee.monitoring.grafana.enable = true;}];
    in {
      inherit (g) enable;
      server = {inherit (g.settings.server) http_addr http_port;};
      secret = g.settings.security.secret_key;
      provision = g.provision.enable;
      datasources = g.provision.datasources.settings.datasources;
      dashboards = map (p:
        p
        // {
          options.path =
            lib.hasInfix (builtins.unsafeDiscardStringContext "cp ${monitoringFiles + "/grafana-dashboard.json"} $out/barnabee.json")
            (builtins.unsafeDiscardStringContext p.options.path.script);
        })
      g.provision.dashboards.settings.providers;
      failed = failed c;
      noKey = failed noKey;
    };
    expected = {
      enable = true;
      server = {
        http_addr = "127.0.0.1";
        http_port = 3000;
      };
      secret = "$__file{/run/secrets/grafana/secret_key}";
      provision = true;
      datasources = [
        {
          name = "Prometheus";
          type = "prometheus";
          url = "http://127.0.0.1:9090";
          isDefault = true;
        }
      ];
      dashboards = [
        {
          name = "barnabee";
          type = "file";
          options.path = true;
        }
      ];
      failed = [];
      noKey = ["barnabee.monitoring.grafana.enable is on but barnabee.monitoring.grafana.secretKeyFile is not set: give a sops secret (owner = \"grafana\") holding Grafana's secret key (`openssl rand -hex 32`)."];
    };
  }
  {
    name = "notify: every channel renders watchdog.toml's [notify] keys; secrets as credentials under /run/credentials/barnabee-watchdog.service/; HA defaults to the agents' URL and token";
    expr = (renderedOf notifying "watchdog").notify;
    expected = {
      home_assistant = {
        url = "http://ha.invalid:8123";
        token_file = "/run/credentials/barnabee-watchdog.service/notify-home-assistant-token";
        services = ["mobile_app_anna_phone"];
        persistent = true;
        min_severity = "critical";
      };
      email = {
        host = "smtp.invalid";
        port = 465;
        security = "tls";
        username = "barnabee@example.org";
        password_file = "/run/credentials/barnabee-watchdog.service/notify-email-password";
        from = "Barnabee <barnabee@example.org>";
        to = ["anna@example.org" "ben@example.org"];
        min_severity = "warning";
      };
      webhook = {
        url = "https://ntfy.invalid/barnabee";
        token_file = "/run/credentials/barnabee-watchdog.service/notify-webhook-token";
        min_severity = "info";
      };
    };
  }
  {
    name = "notify: the watchdog gets its channel secrets with LoadCredential= (the HA token is the agents' sops secret, which then restarts the watchdog too) and may leave localhost; the S3 secret of its incident log's replica beside them";
    expr = let
      s = (serviceOf notifying "watchdog").serviceConfig;
    in {
      inherit (s) LoadCredential SetCredential IPAddressAllow;
      restart = notifying.sops.secrets."home_assistant/token".restartUnits;
      failed = failed notifying;
    };
    expected = {
      LoadCredential = [
        "notify-email-password:/run/secrets/notify/smtp_password"
        "notify-home-assistant-token:/run/secrets/home_assistant/token"
        "notify-webhook-token:/run/secrets/notify/webhook_token"
        "s3-secret-access-key:/run/secrets/s3/secret_access_key"
      ];
      SetCredential = [
        "notify-email-password:\\n"
        "notify-home-assistant-token:\\n"
        "notify-webhook-token:\\n"
        "s3-secret-access-key:\\n"
      ];
      IPAddressAllow = ["any"];
      restart = ["barnabee-agents.service" "barnabee-watchdog.service"];
      failed = [];
    };
  }
  {
    name = "notify: off by default (no [notify], no notify credential (only the incident log replica's S3 secret), no address opened for notifications (only for that S3 replica)); a webhook without token and e-mail without login render no secret key";
    expr = let
      plain = withNotify {
        webhook = {
          enable = true;
          url = "https://ntfy.invalid/x";
        };
        email = {
          enable = true;
          host = "relay.lan";
          security = "none";
          from = "barnabee@example.org";
          to = ["anna@example.org"];
        };
      };
    in {
      off = {
        notify = (renderedOf beelink "watchdog") ? notify;
        credentials = (serviceOf beelink "watchdog").serviceConfig.LoadCredential;
        # Not for notifications: the incident log's S3 replica (the beelink default) opens it.
        ip = (serviceOf beelink "watchdog").serviceConfig.IPAddressAllow or [];
        restart = beelink.sops.secrets."home_assistant/token".restartUnits;
      };
      plain = {
        inherit ((renderedOf plain "watchdog").notify) webhook email;
        credentials = lib.filter (c: !lib.hasPrefix "s3-secret-access-key:" c) (serviceOf plain "watchdog").serviceConfig.LoadCredential;
        failed = failed plain;
      };
    };
    expected = {
      off = {
        notify = false;
        credentials = ["s3-secret-access-key:/run/secrets/s3/secret_access_key"];
        ip = ["any"];
        restart = ["barnabee-agents.service"];
      };
      plain = {
        webhook = {
          url = "https://ntfy.invalid/x";
          min_severity = "warning";
        };
        email = {
          host = "relay.lan";
          security = "none";
          from = "barnabee@example.org";
          to = ["anna@example.org"];
          min_severity = "warning";
        };
        credentials = [];
        failed = [];
      };
    };
  }
  {
    name = "notify: a bad severity, security or HA service name fails evaluation (typed options)";
    expr = map (extra: rejects (renderedOf (withNotify extra) "watchdog")) [
      {
        webhook = {
          enable = true;
          url = "https://ntfy.invalid/x";
          minSeverity = "urgent";
        };
      }
      {
        email = {
          enable = true;
          host = "smtp.invalid";
          security = "ssl";
          from = "a@example.org";
          to = ["b@example.org"];
        };
      }
      {
        homeAssistant = {
          enable = true;
          url = "http://ha.invalid:8123";
          services = ["notify.mobile_app_anna_phone"];
        };
      }
    ];
    expected = [true true true];
  }
  {
    name = "notify: incomplete channels fail with what to set (HA without the agents' URL, e-mail login half set, nothing to send)";
    expr = let
      says = extra: needle: lib.any (lib.hasInfix needle) (failed (withNotify extra));
    in [
      (says {homeAssistant.enable = true;} "notify.homeAssistant is enabled but its url or tokenFile is not set")
      (says {
        email = {
          enable = true;
          host = "smtp.invalid";
          from = "a@example.org";
          to = ["b@example.org"];
          username = "a@example.org";
        };
      } "username and passwordFile go together")
      (says {
        homeAssistant = {
          enable = true;
          url = "http://ha.invalid:8123";
          persistent = false;
        };
      } "services is empty and persistent = false")
      (says {email.enable = true;} "notify.email is enabled: set host, from and to")
    ];
    expected = [true true true true];
  }
]
