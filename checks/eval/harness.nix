# What every module-logic test file shares: the stubs, the ways to evaluate our modules (one
# daemon module set, a role, a whole host, the appliance profile alone) and small readers.
{lib}: let
  stubs = import ./stubs.nix {inherit lib;};
  # The stub runCommand cannot run the daemon: cases compare what was handed to the TOML
  # generator; the check-config wiring has its own case.
  noCheck = {
    services.barnabee = lib.genAttrs ["memory" "agents" "voice" "inference" "watchdog" "console"] (_: {checkConfig = lib.mkDefault false;});
  };
  evalWith = base: modules:
    (lib.evalModules {
      specialArgs = {inherit (stubs) pkgs;};
      modules = [stubs.nixos noCheck] ++ base ++ modules;
    })
    .config;
in {
  inherit stubs noCheck;
  eval = evalWith [../../nixos-modules];
  evalRole = role: evalWith [../../nixos-modules/roles/${role}.nix];
  # A host as nixosConfigurations.<host> composes it (flake.nix mkHost), sops-nix's options
  # stubbed; `site` replaces the committed site.nix values (e.g. checks/site-test.nix).
  evalHost = host: site: evalWith [stubs.sops ../../nixos-modules/roles/${host}.nix ../../hosts/${host}] site;
  # nixosModules.appliance exported on its own (the flake's `appliance` output).
  evalAppliance = evalWith [../../nixos-modules/appliance.nix];
  failed = cfg: map (a: a.message) (lib.filter (a: !a.assertion) cfg.assertions);
  # A definition the module system must reject (type error) throws: tryEval catches it.
  rejects = value: !(builtins.tryEval (builtins.deepSeq value value)).success;
  # What the module handed to the TOML generator (the stub keeps it; see ./stubs.nix).
  renderedOf = cfg: role: cfg.services.barnabee.${role}.configFile.value;
  # The NixOS module system's view of a unit's drop-in settings.
  serviceOf = cfg: role: cfg.systemd.services."barnabee-${role}";
}
