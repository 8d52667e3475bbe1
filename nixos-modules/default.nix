# Every Barnabee module; imports only, enables nothing (nixosModules.default).
# The daemon packages come from the flake's overlay (pkgs.barnabee-<role>): hosts add
# `nixpkgs.overlays = [ self.overlays.default ]`, tests build their pkgs with it.
{
  imports = [
    ./memory.nix
    ./agents.nix
    ./voice.nix
    ./inference.nix
    ./watchdog.nix
    ./console.nix
    # barnabee.monitoring's options; with their defaults it configures nothing (the appliance
    # profile turns node_exporter on, the beelink role Prometheus and Alertmanager).
    ./monitoring.nix
  ];
}
