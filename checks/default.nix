# checks.x86_64-linux: the Rust checks (crane), formatting and lint of the Nix files, the
# module-logic tests, the real host configurations, and the NixOS VM tests (checks/vm/*.nix,
# one check each: vm-<file name>). checks/README.md says what each proves.
{
  self,
  pkgs,
  sops-nix,
  craneLib,
}: let
  inherit (pkgs) lib;
  ws = pkgs.barnabee-workspace;
  testLib = import ./lib.nix {inherit self pkgs sops-nix;};
  withTestSite = name: self.nixosConfigurations.${name}.extendModules {modules = [(import ./site-test.nix).${name}];};
  evalResult = import ./eval/run.nix {inherit lib;};
  vmTests = lib.mapAttrs' (file: _: {
    name = "vm-${lib.removeSuffix ".nix" file}";
    value = import ./vm/${file} {inherit testLib pkgs;};
  }) (lib.filterAttrs (f: t: t == "regular" && lib.hasSuffix ".nix" f) (builtins.readDir ./vm));
in
  {
    clippy = craneLib.cargoClippy (ws.common
      // {
        inherit (ws) cargoArtifacts;
        cargoClippyExtraArgs = "--all-targets -- -D warnings";
      });
    # Unit tests only: the integration tests need peers (S3 server, Home Assistant, D-Bus)
    # that the README test command installs outside the Nix sandbox.
    nextest = craneLib.cargoNextest (ws.common
      // {
        inherit (ws) cargoArtifacts;
        cargoNextestExtraArgs = "--lib --bins"; # common already has --workspace
        # ../shared/testdata is not in the sandbox: tests that need it say SKIPPED.
        BARNABEE_SHARED_ABSENT = "1";
        # The ONNX Runtime unit tests load the library (ort load-dynamic): give them nixpkgs'.
        ORT_DYLIB_PATH = "${pkgs.onnxruntime}/lib/libonnxruntime.so";
      });
    cargo-fmt = craneLib.cargoFmt {inherit (ws.common) src version pname;};

    nix-format = pkgs.runCommand "barnabee-nix-format" {} ''
      cd ${self}
      ${lib.getExe pkgs.barnabee-alejandra} --check .
      touch $out
    '';
    deadnix = pkgs.runCommand "barnabee-deadnix" {} ''
      ${lib.getExe pkgs.deadnix} --fail ${self}
      touch $out
    '';
    eval-modules =
      if evalResult.failures == []
      then pkgs.runCommand "barnabee-eval-modules" {} "echo ${toString evalResult.total} cases passed > $out"
      else throw "module-logic tests failed: ${builtins.toJSON evalResult.failures}";

    # The operators' alert rules and dashboard ship as files: check them with the real tools.
    # The same checks as checks/monitoring/run offline (the real-peer scenarios stay there):
    # the rules parse, every rule's promtool unit tests pass, Alertmanager's config is valid.
    monitoring = pkgs.runCommand "barnabee-monitoring" {nativeBuildInputs = [(pkgs.prometheus.cli or pkgs.prometheus) pkgs.prometheus-alertmanager pkgs.jq];} ''
      promtool check rules ${../nixos-modules/monitoring/alerts.yml}
      promtool test rules ${../nixos-modules/monitoring}/alerts.test.yml
      amtool check-config ${../nixos-modules/monitoring/alertmanager.yml}
      jq -e '.panels | length > 0' ${../nixos-modules/monitoring/grafana-dashboard.json}
      touch $out
    '';

    host-beelink = (withTestSite "beelink").config.system.build.toplevel;
    # The beast's real closure (unfree driver, CUDA onnxruntime) is not in the public cache:
    # evaluate it here, build it on a machine with a CUDA cache.
    host-beast-eval = pkgs.writeText "beast-drv-path" (withTestSite "beast").config.system.build.toplevel.drvPath;
    image-beelink-eval = pkgs.writeText "beelink-image-drv-path" (withTestSite "beelink").config.system.build.images.raw-efi.drvPath;
  }
  // vmTests
