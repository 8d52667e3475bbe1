# The Nix formatter: our alejandra wrapper (checks/nix/alejandra), built from its own
# Cargo.lock, so `nix fmt` and the offline check (checks/nix/run) use the same alejandra
# version (3.1.0 from crates.io; nixpkgs' alejandra is 4.x and formats differently).
{
  rustPlatform,
  lib,
}:
rustPlatform.buildRustPackage {
  pname = "barnabee-alejandra";
  version = "3.1.0";
  src = lib.fileset.toSource {
    root = ../checks/nix/alejandra;
    fileset = lib.fileset.unions [
      ../checks/nix/alejandra/Cargo.toml
      ../checks/nix/alejandra/Cargo.lock
      ../checks/nix/alejandra/src
    ];
  };
  cargoLock.lockFile = ../checks/nix/alejandra/Cargo.lock;
  meta.mainProgram = "alejandra";
}
