# The Rust workspace built once with crane, split into one package per daemon (+ the CLI).
# Roles come from the workspace member list in Cargo.toml, so a crate added there appears here
# without touching this file. Each role package holds its binary and its systemd units
# (crates/<role>/systemd/*.service, else nixos-modules/units/<role>/*.service) with @bindir@
# substituted by $out/bin, in $out/lib/systemd/system (what systemd.packages picks up).
{
  pkgs,
  craneLib,
  root,
}: let
  inherit (pkgs) lib;
  cargoToml = builtins.fromTOML (builtins.readFile (root + "/Cargo.toml"));
  version = cargoToml.workspace.package.version;
  # "crates/memory" -> "memory". Only crates with a binary are roles: the libraries (service,
  # wyoming) have no src/main.rs and are not packages.
  roles =
    lib.filter (r: builtins.pathExists (root + "/crates/${r}/src/main.rs"))
    (map (m: lib.removePrefix "crates/" m) cargoToml.workspace.members);
  binName = role:
    if role == "cli"
    then "barnabee"
    else "barnabee-${role}";

  src = lib.fileset.toSource {
    inherit root;
    fileset = lib.fileset.unions [
      (root + "/Cargo.toml")
      (root + "/Cargo.lock")
      # Whole crates: include_str!/include_bytes! inputs and tests' testdata come along.
      (root + "/crates")
    ];
  };
  # Vendored once and shared by every derivation below (crane would otherwise re-derive the
  # same vendor directory per derivation: the same output, more evaluation).
  cargoVendorDir = craneLib.vendorCargoDeps {inherit src;};
  common = {
    inherit src version cargoVendorDir;
    pname = "barnabee";
    strictDeps = true;
    nativeBuildInputs = [pkgs.pkg-config pkgs.cmake pkgs.perl];
    buildInputs = [pkgs.alsa-lib]; # cpal (barnabee-voice)
    cargoExtraArgs = "--locked --workspace";
  };
  cargoArtifacts = craneLib.buildDepsOnly common;
  workspace = craneLib.buildPackage (common
    // {
      inherit cargoArtifacts;
      doCheck = false; # nextest runs as its own check
      # checks/default.nix reuses the same source and dependency build for clippy/nextest.
      passthru = {inherit common cargoArtifacts;};
    });

  unitDir = role:
    if builtins.pathExists (root + "/crates/${role}/systemd")
    then root + "/crates/${role}/systemd"
    else if builtins.pathExists (root + "/nixos-modules/units/${role}")
    then root + "/nixos-modules/units/${role}"
    else null;

  mkRole = role: let
    bin = binName role;
    units = unitDir role;
  in
    pkgs.runCommand "${bin}-${version}" {
      meta = {
        mainProgram = bin;
        description = "Barnabee ${role}";
        license = lib.licenses.agpl3Plus;
        platforms = lib.platforms.linux;
      };
      passthru = {inherit workspace;};
    } ''
      install -Dm755 ${workspace}/bin/${bin} $out/bin/${bin}
      ${lib.optionalString (units != null) ''
        mkdir -p $out/lib/systemd/system
        for unit in ${units}/*.service; do
          substitute "$unit" "$out/lib/systemd/system/$(basename "$unit")" \
            --replace-fail @bindir@ "$out/bin"
        done
      ''}
    '';

  # TEST ONLY (the upgrade/rollback VM tests' "build B"): barnabee-memory with the additive
  # schema N+1 migration of the cargo feature `test-schema-next`. Never deploy it.
  memoryTestSchemaNext = let
    ws = craneLib.buildPackage (common
      // {
        inherit cargoArtifacts;
        pname = "barnabee-memory-test-schema-next";
        cargoExtraArgs = "--locked -p barnabee-memory --features test-schema-next";
        doCheck = false;
      });
  in
    (mkRole "memory").overrideAttrs (old: {
      name = "barnabee-memory-test-schema-next-${version}";
      buildCommand = builtins.replaceStrings ["${workspace}/bin"] ["${ws}/bin"] old.buildCommand;
    });

  rolePackages = lib.listToAttrs (map (role: {
      name = binName role;
      value = mkRole role;
    })
    roles);
in
  rolePackages
  // {
    barnabee-workspace = workspace;
    barnabee-memory-test-schema-next = memoryTestSchemaNext;
    barnabee-all = pkgs.symlinkJoin {
      name = "barnabee-all-${version}";
      paths = lib.attrValues rolePackages;
    };
  }
