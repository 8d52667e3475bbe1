# services.barnabee.watchdog: supervision over D-Bus, the health gate, the rollback unit.
#
# Rights, and nothing more:
# - polkit: the user barnabee-watchdog may start/restart/try-restart units named
#   barnabee-*.service (org.freedesktop.systemd1.manage-units; systemd passes the `unit` and
#   `verb` details). Not stop, not any other unit, no transient units.
# - the rollback itself runs as root in barnabee-rollback.service, a fixed oneshot defined
#   here; the watchdog can only start it. `switch-to-configuration` leaves it alone
#   (restartIfChanged = false, X-StopOnRemoval = false), so the switch it runs cannot kill it.
{
  config,
  lib,
  pkgs,
  ...
}: let
  blib = import ./lib.nix {inherit lib;};
  inherit (lib) mkOption types;
  daemons = ["memory" "agents" "voice" "inference" "console"];
  enabled = lib.filter (r: config.services.barnabee.${r}.enable or false) daemons;
  agents = config.services.barnabee.agents;
  wcfg = config.services.barnabee.watchdog;
  # The agents' Home Assistant (same instance) when this host runs agents with one configured.
  agentsHaUrl =
    if agents.enable or false
    then agents.settings.home_assistant.url or null
    else null;
  agentsHaToken =
    if agents.enable or false
    then agents.homeAssistantTokenFile
    else null;
  severity = types.enum ["info" "warning" "critical"];
  minSeverity = channel:
    mkOption {
      type = severity;
      default = "warning";
      description = "The least severe notification the ${channel} channel gets (`info` < `warning` < `critical`).";
    };
  # The watchdog reads `*_file` keys as paths; its credentials live here (systemd sets
  # $CREDENTIALS_DIRECTORY to it for LoadCredential=).
  credentialPath = name: "/run/credentials/barnabee-watchdog.service/${name}";
  # The daemons may listen on all addresses (beast); the watchdog probes them on loopback.
  healthUrl = r: let
    listen = config.services.barnabee.${r}.settings.service.listen;
    local =
      builtins.replaceStrings ["0.0.0.0:" "[::]:"] ["127.0.0.1:" "[::1]:"] listen;
  in "http://${local}/health";
in {
  imports = [
    (blib.mkDaemon {
      role = "watchdog";
      port = 7705;
      description = "the Barnabee watchdog (supervision, health gate, rollback)";
      settingsOptions = {
        # The incident log lives in the StateDirectory; a replacement beelink restores it
        # before the daemon opens it.
        replication = blib.replicationOption {
          cfg = wcfg;
          what = "the incident log";
        };
      };
      extraOptions = {
        replication.secretAccessKeyFile = blib.replicationSecretOption;
        gate = {
          timeout = mkOption {
            # barnabee-service's one duration grammar (crates/service/src/time.rs), checked here
            # so a typo fails the evaluation instead of the gate at boot.
            type = types.strMatching "([0-9]+(\\.[0-9]+)?(ns|us|ms|s|m|h|d))+|[0-9]+(\\.[0-9]+)?";
            default = "5m";
            example = "2m30s";
            description = "How long the gate waits for every unit to be active and healthy (`gate --timeout`): `300`, `45s`, `5m`, `1h30m`.";
          };
          enable = mkOption {
            type = types.bool;
            default = true;
            description = ''
              Run barnabee-health-gate.service (`barnabee-watchdog gate --timeout 5m`) before
              boot-complete.target, so boot counting only blesses a generation whose barnabee
              units come up healthy.
            '';
          };
        };
        notify = {
          homeAssistant = {
            enable = lib.mkEnableOption "notifications through Home Assistant (`[notify.home_assistant]`: companion app notify services and persistent notifications)";
            url = mkOption {
              type = types.nullOr types.str;
              default = agentsHaUrl;
              defaultText = lib.literalMD "`services.barnabee.agents.settings.home_assistant.url` when agents run on this host, else null";
              example = "http://homeassistant.lan:8123";
              description = "Home Assistant's base URL. Defaults to the agents' Home Assistant (the same instance) on the beelink.";
            };
            tokenFile = mkOption {
              type = types.nullOr blib.pathNotInStore;
              default = agentsHaToken;
              defaultText = lib.literalMD "`services.barnabee.agents.homeAssistantTokenFile` when agents run on this host, else null";
              description = ''
                File with a long-lived access token (a sops secret); passed as the credential
                `notify-home-assistant-token`. Defaults to the agents' token file.
              '';
            };
            services = mkOption {
              type = types.listOf (types.strMatching "[A-Za-z0-9_]+");
              default = [];
              example = ["mobile_app_anna_phone"];
              description = "Home Assistant `notify` services to call (the name after `notify.`).";
            };
            persistent = mkOption {
              type = types.bool;
              default = true;
              description = "Also create a persistent notification in Home Assistant (dismissed when resolved).";
            };
            minSeverity = minSeverity "Home Assistant";
          };
          email = {
            enable = lib.mkEnableOption "notifications by e-mail over SMTP (`[notify.email]`)";
            host = mkOption {
              type = types.str;
              default = "";
              example = "smtp.example.org";
              description = "SMTP server.";
            };
            port = mkOption {
              type = types.nullOr types.port;
              default = null;
              description = "SMTP port; null: 587 (starttls), 465 (tls), 25 (none).";
            };
            security = mkOption {
              type = types.enum ["starttls" "tls" "none"];
              default = "starttls";
              description = "`starttls` (upgrade a plain connection, required), `tls` (SMTPS) or `none` (a relay on this machine or the LAN only).";
            };
            username = mkOption {
              type = types.nullOr types.str;
              default = null;
              description = "SMTP AUTH user (with `passwordFile`, or neither).";
            };
            passwordFile = mkOption {
              type = types.nullOr blib.pathNotInStore;
              default = null;
              description = "File with the SMTP password (a sops secret); passed as the credential `notify-email-password`.";
            };
            from = mkOption {
              type = types.str;
              default = "";
              example = "Barnabee <barnabee@example.org>";
              description = "Sender address.";
            };
            to = mkOption {
              type = types.listOf types.str;
              default = [];
              example = ["anna@example.org"];
              description = "Recipients.";
            };
            minSeverity = minSeverity "e-mail";
          };
          webhook = {
            enable = lib.mkEnableOption "notifications as a JSON POST to a webhook (`[notify.webhook]`, ntfy/Gotify style)";
            url = mkOption {
              type = types.str;
              default = "";
              example = "https://ntfy.sh/barnabee-alerts";
              description = "The URL the notification is POSTed to.";
            };
            tokenFile = mkOption {
              type = types.nullOr blib.pathNotInStore;
              default = null;
              description = "File with a bearer token (a sops secret), optional; passed as the credential `notify-webhook-token`.";
            };
            minSeverity = minSeverity "webhook";
          };
          ipAddressAllow = mkOption {
            type = types.listOf types.str;
            default = ["any"];
            example = ["192.168.1.0/24"];
            description = ''
              The packaged unit only lets the watchdog talk to localhost (IPAddressDeny=any,
              IPAddressAllow=localhost); with a channel enabled these are added to
              `IPAddressAllow=` so it reaches Home Assistant, the SMTP server or the webhook.
              Narrow it (e.g. to the LAN prefix) when every channel is local.
            '';
          };
        };
        rollbackCommand = mkOption {
          type = types.listOf types.str;
          default = ["/run/current-system/sw/bin/systemctl" "start" "--no-block" "barnabee-rollback.service"];
          description = ''
            What the gate runs when it fails (rendered as `[rollback] command`, with an empty
            `runner`: the rollback unit already runs outside the watchdog's cgroup).
          '';
        };
      };
      extraConfig = cfg: let
        n = cfg.notify;
        anyChannel = n.homeAssistant.enable || n.email.enable || n.webhook.enable;
        repl = cfg.settings.replication;
        isS3 = d: d.type == "s3" || lib.hasPrefix "s3://" (toString d.url);
        s3Replica = repl != null && lib.any isS3 ([repl] ++ repl.also);
      in
        lib.mkMerge [
          (blib.replicationConfig {
            role = "watchdog";
            inherit cfg;
          })
          {
            assertions = [
              {
                assertion = n.homeAssistant.enable -> n.homeAssistant.url != null && n.homeAssistant.tokenFile != null;
                message = "services.barnabee.watchdog.notify.homeAssistant is enabled but its url or tokenFile is not set (they default to the agents' Home Assistant only on a host that runs agents with one configured).";
              }
              {
                assertion = n.homeAssistant.enable -> n.homeAssistant.services != [] || n.homeAssistant.persistent;
                message = "services.barnabee.watchdog.notify.homeAssistant: services is empty and persistent = false, so nothing would be sent.";
              }
              {
                assertion = n.email.enable -> n.email.host != "" && n.email.from != "" && n.email.to != [];
                message = "services.barnabee.watchdog.notify.email is enabled: set host, from and to.";
              }
              {
                assertion = n.email.enable -> (n.email.username == null) == (n.email.passwordFile == null);
                message = "services.barnabee.watchdog.notify.email: username and passwordFile go together (set both or neither).";
              }
              {
                assertion = n.webhook.enable -> n.webhook.url != "";
                message = "services.barnabee.watchdog.notify.webhook is enabled: set url.";
              }
            ];

            services.barnabee.watchdog.credentials =
              lib.optionalAttrs (n.homeAssistant.enable && n.homeAssistant.tokenFile != null) {notify-home-assistant-token = n.homeAssistant.tokenFile;}
              // lib.optionalAttrs (n.email.enable && n.email.passwordFile != null) {notify-email-password = n.email.passwordFile;}
              // lib.optionalAttrs (n.webhook.enable && n.webhook.tokenFile != null) {notify-webhook-token = n.webhook.tokenFile;};
            # Out of the packaged unit's localhost-only IP sandbox: to the channels, and to the
            # incident log's S3 replica (its endpoint is a host name: any address).
            systemd.services.barnabee-watchdog.serviceConfig.IPAddressAllow = lib.mkMerge [
              (lib.mkIf anyChannel n.ipAddressAllow)
              (lib.mkIf s3Replica ["any"])
            ];

            users.users.barnabee-watchdog = {
              isSystemUser = true;
              group = "barnabee-watchdog";
              description = "Barnabee watchdog (polkit rules match this name)";
            };
            users.groups.barnabee-watchdog = {};

            services.barnabee.watchdog.settings = {
              units = lib.mkDefault (map (r: {
                  name = "barnabee-${r}.service";
                  health_url = healthUrl r;
                })
                enabled);
              rollback = {
                runner = lib.mkDefault [];
                command = lib.mkDefault cfg.rollbackCommand;
              };
              # [notify] of watchdog.toml (crates/watchdog/src/notify/config.rs); secrets as
              # credentials, named by their path under /run/credentials/barnabee-watchdog.service/.
              notify = lib.mkIf anyChannel (
                lib.optionalAttrs n.homeAssistant.enable {
                  home_assistant = {
                    inherit (n.homeAssistant) url services persistent;
                    token_file = credentialPath "notify-home-assistant-token";
                    min_severity = n.homeAssistant.minSeverity;
                  };
                }
                // lib.optionalAttrs n.email.enable {
                  email = {
                    inherit (n.email) host port security username from to;
                    password_file =
                      if n.email.passwordFile != null
                      then credentialPath "notify-email-password"
                      else null;
                    min_severity = n.email.minSeverity;
                  };
                }
                // lib.optionalAttrs n.webhook.enable {
                  webhook = {
                    inherit (n.webhook) url;
                    token_file =
                      if n.webhook.tokenFile != null
                      then credentialPath "notify-webhook-token"
                      else null;
                    min_severity = n.webhook.minSeverity;
                  };
                }
              );
            };

            security.polkit.enable = true;
            security.polkit.extraConfig = ''
              // barnabee-watchdog: start/restart barnabee units (and barnabee-rollback.service).
              polkit.addRule(function (action, subject) {
                if (action.id == "org.freedesktop.systemd1.manage-units" &&
                    subject.user == "barnabee-watchdog") {
                  var unit = action.lookup("unit");
                  var verb = action.lookup("verb");
                  if (unit && /^barnabee-[a-z0-9-]+\.service$/.test(unit) &&
                      (verb == "start" || verb == "restart" || verb == "try-restart")) {
                    return polkit.Result.YES;
                  }
                }
              });
            '';

            systemd.services.barnabee-health-gate = lib.mkIf cfg.gate.enable {
              overrideStrategy = "asDropin";
              requiredBy = ["boot-complete.target"];
              wantedBy = ["multi-user.target"];
              after = map (r: "barnabee-${r}.service") enabled;
              # The gate after every switch, not only at boot: switch-to-configuration restarts a
              # unit whose X-Restart-Triggers changed, so a switch that changes any supervised
              # daemon's package or config re-runs the gate (a oneshot: `nixos-rebuild switch`
              # waits for it, up to gate.timeout, and reports its failure). On failure the gate
              # starts barnabee-rollback, which waits for that switch to release its lock.
              restartTriggers = lib.concatMap (r: let
                d = config.services.barnabee.${r};
              in [d.package d.configFile])
              enabled;
              serviceConfig.ExecStart = ["" "${lib.getExe' cfg.package "barnabee-watchdog"} --config ${cfg.configFile} gate --timeout ${cfg.gate.timeout}"];
            };

            systemd.services.barnabee-rollback = {
              description = "Barnabee: roll the system profile back one generation and activate it";
              restartIfChanged = false;
              stopIfChanged = false;
              unitConfig.X-StopOnRemoval = false;
              path = [config.nix.package pkgs.coreutils pkgs.util-linux];
              serviceConfig.Type = "oneshot";
              script = ''
                from="$(readlink -f /run/current-system)"
                # One automatic rollback per generation and boot: if the generation we rolled back
                # to fails its gate too, rolling back further would walk the whole history; stop
                # and leave it to the operator (the gate's P1 incident says so).
                mkdir -p /run/barnabee-rollback
                if [ -e /run/barnabee-rollback/to ] && [ "$(cat /run/barnabee-rollback/to)" = "$from" ]; then
                  echo "barnabee-rollback: $from is itself the target of a rollback in this boot; not rolling back further (operator needed)" >&2
                  exit 1
                fi
                # The gate runs inside the switch that started it (restartTriggers), and
                # switch-to-configuration refuses to run while another holds its lock: wait for it.
                mkdir -p /run/nixos
                flock --wait 900 /run/nixos/switch-to-configuration.lock true
                echo "barnabee-rollback: from $from"
                nix-env --profile /nix/var/nix/profiles/system --rollback
                to="$(readlink -f /nix/var/nix/profiles/system)"
                echo "$to" > /run/barnabee-rollback/to
                echo "barnabee-rollback: to $to"
                exec /nix/var/nix/profiles/system/bin/switch-to-configuration switch
              '';
            };
          }
        ];
    })
  ];
}
