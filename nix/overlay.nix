# overlays.default: pkgs.barnabee-<role>, pkgs.barnabee (CLI), pkgs.barnabee-alejandra.
# The NixOS modules find their packages here (mkPackageOption pkgs "barnabee-<role>").
{
  crane,
  root,
}: final: _prev:
import ./packages.nix {
  pkgs = final;
  craneLib = crane.mkLib final;
  inherit root;
}
// {
  barnabee-alejandra = final.callPackage ./formatter.nix {};
}
