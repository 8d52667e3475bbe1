# hosts/beelink: the beelink role on an Intel mini PC, with the file systems of the image
# (by label: nixos, ESP) and its secrets from sops. Site values the operator must set (SSH keys,
# the beast's address, the S3 replica) are options with assertions: see ./site.nix.
{
  config,
  lib,
  ...
}: {
  imports = [
    ./hardware.nix
    ./site.nix
  ];

  networking.hostName = "beelink";
  system.stateVersion = "26.11";

  # The same layout as system.build.images.raw-efi (nixos/modules/virtualisation/disk-image.nix),
  # so `nixos-rebuild switch` keeps working on a machine installed from the image.
  fileSystems."/" = {
    device = "/dev/disk/by-label/nixos";
    fsType = "ext4";
    autoResize = true;
  };
  fileSystems."/boot" = {
    device = "/dev/disk/by-label/ESP";
    fsType = "vfat";
    options = ["fmask=0077" "dmask=0077"];
  };
  boot.growPartition = true;

  # Secrets: decrypted by sops-nix with the host's age identity (its recipient is in
  # secrets/.sops.yaml), handed to the daemons with LoadCredential=.
  sops = {
    defaultSopsFile = ../../secrets/beelink.yaml;
    # The host's own age identity, generated on the operator's machine before the first
    # install and put on the disk with it (docs/nixos.md "First boot"), so the secrets are
    # encrypted to it before the machine ever runs. Not the SSH host key: that exists only
    # after the first boot, too late for the first activation. Until the key is there the
    # daemons start with empty credentials and say "not provisioned" in /health.
    age.keyFile = "/var/lib/sops-nix/key.txt";
    age.sshKeyPaths = [];
    gnupg.sshKeyPaths = [];
    secrets = {
      # Memory's replica, and the cost ledger's and the incident log's beside it (the beelink
      # role defaults them to the same secret).
      "s3/secret_access_key".restartUnits =
        ["barnabee-memory.service"]
        ++ lib.optional (config.services.barnabee.agents.settings.replication != null) "barnabee-agents.service"
        ++ lib.optional (config.services.barnabee.watchdog.settings.replication != null) "barnabee-watchdog.service";
      "openrouter/api_key".restartUnits = ["barnabee-agents.service"];
      # The watchdog's Home Assistant notifications default to the same token.
      "home_assistant/token".restartUnits =
        ["barnabee-agents.service"]
        ++ lib.optional config.services.barnabee.watchdog.notify.homeAssistant.enable "barnabee-watchdog.service";
    };
  };
  services.barnabee.memory.replication.secretAccessKeyFile = config.sops.secrets."s3/secret_access_key".path;
  # Notifications (the watchdog's [notify], docs/nixos.md "Monitoring and notifications") are
  # set in ./site.nix; Home Assistant's URL and token default to the agents' ones.
  services.barnabee.agents = {
    openrouterApiKeyFile = config.sops.secrets."openrouter/api_key".path;
    homeAssistantTokenFile = config.sops.secrets."home_assistant/token".path;
  };
}
