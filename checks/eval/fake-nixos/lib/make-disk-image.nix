# Stand-in for nixpkgs' nixos/lib/make-disk-image.nix in the module-logic tests: returns the
# arguments our image override passes, so a case can read them (bootSize, partition table).
args: {
  inherit (args) bootSize partitionTableType format diskSize baseName;
}
