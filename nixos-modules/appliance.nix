# The appliance base profile shared by both hosts (nixosModules.appliance): boot loader with
# generations and boot counting, the journal, PID 1's hardware watchdog, SSH with keys only,
# garbage collection; monitoring (./monitoring.nix). Daemons are enabled by the roles, not here.
{
  config,
  lib,
  options,
  pkgs,
  ...
}: let
  inherit (lib) mkOption mkDefault types;
  cfg = config.barnabee;
  # Options that only exist on the 26.11 line (see docs/nixos.md): use them when the pinned
  # nixpkgs declares them, fall back otherwise, so the flake evaluates on either channel.
  hasBootCounting = lib.hasAttrByPath ["boot" "loader" "systemd-boot" "bootCounting"] options;
  hasJournaldSettings = lib.hasAttrByPath ["services" "journald" "settings"] options;
in {
  # The daemon modules' options (nothing enabled) and barnabee.monitoring (./monitoring.nix):
  # monitoring reads services.barnabee.<role>.enable, and nixosModules.appliance is exported on
  # its own.
  imports = [./default.nix];

  options.barnabee = {
    operatorKeys = mkOption {
      type = types.listOf types.str;
      default = [];
      example = ["ssh-ed25519 AAAAC3Nza... operator@laptop"];
      description = "SSH public keys allowed to log in as root (deploys use `--target-host root@<host>`).";
    };
    bootCounting = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = ''
          systemd-boot boot counting: a new generation gets `tries` boots to reach
          boot-complete.target (which requires barnabee-health-gate.service), else systemd-boot
          falls back to the previous generation. Only where the pinned nixpkgs has
          boot.loader.systemd-boot.bootCounting (26.11 line).
        '';
      };
      tries = mkOption {
        type = types.ints.positive;
        default = 3;
        description = "Boot attempts of a new generation before it is marked bad.";
      };
    };
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = cfg.operatorKeys != [];
          message = "barnabee.operatorKeys is empty: set it to the operators' SSH public keys (password login is off, so nobody could log in).";
        }
      ];

      # Boot: systemd-boot, bounded generations, no NVRAM writes (the image boots from the
      # removable fallback path on any machine of the class).
      boot.loader.systemd-boot.enable = true;
      # 10 generations need an ESP that holds 10 distinct kernel+initrd pairs (tens of MB
      # each): the images below get a 1 GiB ESP, not make-disk-image's 256 MiB.
      boot.loader.systemd-boot.configurationLimit = mkDefault 10;
      boot.loader.systemd-boot.editor = false;
      boot.loader.efi.canTouchEfiVariables = mkDefault false;
      boot.loader.timeout = mkDefault 3;

      # A headless appliance keeps booting and stays reachable.
      systemd.enableEmergencyMode = false;
      # PID 1 pets the hardware watchdog; a hung kernel or PID 1 resets the machine.
      systemd.settings.Manager = {
        RuntimeWatchdogSec = mkDefault "15s";
        RebootWatchdogSec = mkDefault "30s";
      };

      services.openssh = {
        enable = true;
        # ed25519 only: it is the host's sops-nix identity (hosts/*: age.sshKeyPaths), and no
        # RSA key means sops-nix imports no GPG key either (srvos does the same).
        hostKeys = [
          {
            path = "/etc/ssh/ssh_host_ed25519_key";
            type = "ed25519";
          }
        ];
        settings = {
          PasswordAuthentication = false;
          KbdInteractiveAuthentication = false;
          PermitRootLogin = "prohibit-password";
        };
      };
      users.mutableUsers = false;
      users.users.root.openssh.authorizedKeys.keys = cfg.operatorKeys;
      networking.firewall.enable = true;
      # nftables: the beast's inference ports are open to listed addresses only
      # (services.barnabee.inference.allowFrom renders networking.firewall.extraInputRules).
      networking.nftables.enable = mkDefault true;

      # What the runbooks (docs/nixos.md) tell an operator to run on the box itself.
      environment.systemPackages = [pkgs.barnabee pkgs.barnabee-replicator pkgs.sqlite];

      # The images (system.build.images.raw-efi for a machine, qemu-efi for the VM test) with
      # a 1 GiB ESP: make-disk-image's default bootSize is 256M, which 10 generations with a
      # few kernel updates overflow. The rest is what nixos/modules/virtualisation/
      # disk-image.nix passes.
      image.modules = lib.genAttrs ["raw-efi" "qemu-efi"] (_: {
        config,
        lib,
        pkgs,
        modulesPath,
        ...
      }: {
        system.build.image = lib.mkForce (import (modulesPath + "/../lib/make-disk-image.nix") {
          inherit lib config pkgs;
          inherit (config.virtualisation) diskSize;
          inherit (config.image) baseName format;
          partitionTableType = "efi";
          bootSize = "1G";
        });
      });

      nix.gc = {
        automatic = true;
        dates = "weekly";
        options = "--delete-older-than 30d";
      };
      nix.settings.auto-optimise-store = true;
      documentation.nixos.enable = mkDefault false;

      # Monitoring (./monitoring.nix): node_exporter on every appliance host; Prometheus and
      # Alertmanager where barnabee.monitoring.enable is on (the beelink role). The files are on
      # every host, for `promtool check rules` / `amtool check-config` by hand.
      barnabee.monitoring.nodeExporter.enable = mkDefault true;
      environment.etc."barnabee/monitoring/alerts.yml".source = ./monitoring/alerts.yml;
      environment.etc."barnabee/monitoring/alertmanager.yml".source = ./monitoring/alertmanager.yml;
      environment.etc."barnabee/monitoring/grafana-dashboard.json".source = ./monitoring/grafana-dashboard.json;
    }

    (
      if hasJournaldSettings
      then {
        services.journald.settings.Journal = {
          Storage = "persistent";
          SystemMaxUse = "1G";
          SystemKeepFree = "2G";
          MaxRetentionSec = "1month";
          RateLimitIntervalSec = "30s";
          RateLimitBurst = 10000;
        };
      }
      else {
        services.journald.storage = "persistent";
        services.journald.rateLimitInterval = "30s";
        services.journald.rateLimitBurst = 10000;
        services.journald.extraConfig = ''
          SystemMaxUse=1G
          SystemKeepFree=2G
          MaxRetentionSec=1month
        '';
      }
    )

    (
      if hasBootCounting
      then {
        boot.loader.systemd-boot.bootCounting = {
          inherit (cfg.bootCounting) enable tries;
        };
      }
      else {}
    )
  ];
}
