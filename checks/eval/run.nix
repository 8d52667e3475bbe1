# Runs ./tests.nix, ./tests-appliance.nix and ./tests-monitoring.nix; evaluates to { total; failures; } (failures empty = all passed). Driven by
# checks/nix/run in the Nix chroot, and by the flake check `eval-modules` in Nix CI:
#   nix-instantiate --eval --strict --json checks/eval/run.nix --arg lib 'import /nixlib/lib'
#   ... --arg only 7     one case (0-based) alone, for its full error trace
#   ... -A names         the case names, in order
# `tryEval` only catches `throw`/`assert`: an infinite recursion or a missing attribute aborts
# the whole evaluation. checks/nix/run then evaluates every case on its own, so each such case
# is listed as a failure with its error instead of hiding the others.
{
  lib,
  only ? null,
}: let
  all =
    import ./tests.nix {inherit lib;}
    ++ import ./tests-appliance.nix {inherit lib;}
    ++ import ./tests-monitoring.nix {inherit lib;};
  cases =
    if only == null
    then all
    else [(builtins.elemAt all only)];
  check = case: let
    got = builtins.tryEval (builtins.deepSeq case.expr case.expr);
  in
    if !got.success
    then {
      inherit (case) name;
      error = "evaluation failed with a throw or failed assert (run the case alone: --arg only N)";
    }
    else if got.value == case.expected
    then null
    else {
      inherit (case) name expected;
      got = got.value;
    };
in {
  total = builtins.length cases;
  names = map (c: c.name) all;
  failures = lib.filter (x: x != null) (map check cases);
}
