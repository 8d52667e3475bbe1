# A tiny stand-in for the parts of NixOS and nixpkgs our modules touch, so the module logic can
# be evaluated with nothing but nixpkgs' `lib` (offline: NIXPKGS_LIB; in Nix CI: pkgs.lib).
# Everything undeclared is freeform (attrsOf anything); only list-valued options that several
# modules define are declared, so they concatenate like in NixOS. Keep it this small: the real
# NixOS evaluation is covered by the host-* and vm-* checks.
{lib}: let
  pkg = name: {
    type = "derivation";
    inherit name;
    outPath = "/nix/store/00000000000000000000000000000000-${name}";
    meta.mainProgram = name;
    override = _: pkg "${name}-custom";
  };
in {
  inherit pkg;

  pkgs = {
    inherit lib;
    formats.toml = _: {
      type = lib.types.attrsOf lib.types.anything;
      # JSON stands in for TOML: the tests read the structure back with builtins.fromJSON.
      generate = name: value: builtins.toFile name (builtins.toJSON value);
    };
    runCommand = name: _env: script: builtins.toFile name script;
    fetchurl = {
      sha256,
      name ? "download",
      ...
    }: "/nix/store/${builtins.substring 0 32 sha256}-${name}";
    coreutils = pkg "coreutils";
    onnxruntime = pkg "onnxruntime";
    espeak-ng = pkg "espeak-ng";
    barnabee-memory = pkg "barnabee-memory";
    barnabee-agents = pkg "barnabee-agents";
    barnabee-voice = pkg "barnabee-voice";
    barnabee-inference = pkg "barnabee-inference";
    barnabee-watchdog = pkg "barnabee-watchdog";
  };

  nixos = {
    config._module.freeformType = lib.types.attrsOf lib.types.anything;
    options = {
      assertions = lib.mkOption {
        type = lib.types.listOf lib.types.unspecified;
        default = [];
      };
      warnings = lib.mkOption {
        type = lib.types.listOf lib.types.str;
        default = [];
      };
      systemd.packages = lib.mkOption {
        type = lib.types.listOf lib.types.unspecified;
        default = [];
      };
      networking.firewall.allowedTCPPorts = lib.mkOption {
        type = lib.types.listOf lib.types.port;
        default = [];
      };
    };
    config.nix.package = pkg "nix";
  };
}
