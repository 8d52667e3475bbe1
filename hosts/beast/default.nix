# hosts/beast: the beast role on an x86 server with an NVIDIA card, the file systems of the
# image, and secrets from sops. Site values (SSH keys, the models) are in ./site.nix.
_: {
  imports = [
    ./hardware.nix
    ./site.nix
  ];

  networking.hostName = "beast";
  system.stateVersion = "26.11";

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

  # The beast has no daemon secrets today; the file exists so a secret can be added without
  # touching the wiring (see secrets/README.md).
  sops = {
    defaultSopsFile = ../../secrets/beast.yaml;
    # The host's own age identity, generated on the operator's machine before the first
    # install and put on the disk with it (docs/nixos.md "First boot"), so the secrets are
    # encrypted to it before the machine ever runs. Not the SSH host key: that exists only
    # after the first boot, too late for the first activation. Until the key is there the
    # daemons start with empty credentials and say "not provisioned" in /health.
    age.keyFile = "/var/lib/sops-nix/key.txt";
    age.sshKeyPaths = [];
    gnupg.sshKeyPaths = [];
  };
}
