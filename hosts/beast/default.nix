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
    age.sshKeyPaths = ["/etc/ssh/ssh_host_ed25519_key"];
  };
}
