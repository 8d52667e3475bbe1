# Runs ./tests.nix; evaluates to the list of failures (empty = all passed). Offline:
#   NIX_REMOTE=dummy:// nix-instantiate --eval --strict --json checks/eval/run.nix \
#     --arg lib "import $NIXPKGS_LIB"
# In Nix CI: the flake check `eval-modules` (checks/default.nix).
{lib}: let
  cases = import ./tests.nix {inherit lib;};
  check = case: let
    got = builtins.tryEval (builtins.deepSeq case.expr case.expr);
  in
    if !got.success
    then {
      inherit (case) name;
      error = "evaluation failed (run the case alone for the trace)";
    }
    else if got.value == case.expected
    then null
    else {
      inherit (case) name;
      inherit (case) expected;
      got = got.value;
    };
in {
  total = builtins.length cases;
  failures = lib.filter (x: x != null) (map check cases);
}
