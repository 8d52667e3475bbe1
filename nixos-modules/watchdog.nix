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
  daemons = ["memory" "agents" "voice" "inference"];
  enabled = lib.filter (r: config.services.barnabee.${r}.enable or false) daemons;
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
      extraOptions = {
        gate = {
          timeout = mkOption {
            type = types.str;
            default = "5m";
            description = "How long the gate waits for every unit to be active and healthy (`gate --timeout`).";
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
        rollbackCommand = mkOption {
          type = types.listOf types.str;
          default = ["/run/current-system/sw/bin/systemctl" "start" "--no-block" "barnabee-rollback.service"];
          description = ''
            What the gate runs when it fails (rendered as `[rollback] command`, with an empty
            `runner`: the rollback unit already runs outside the watchdog's cgroup).
          '';
        };
      };
      extraConfig = cfg: {
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
      };
    })
  ];
}
