# TEST site values per host, so CI can build and evaluate the real host configurations
# (checks host-beelink / host-beast-eval / image-beelink-eval) before an operator fills in
# hosts/*/site.nix. Never deploy a host with these.
let
  common = {
    barnabee.operatorKeys = ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBarnabeeCiTestKeyNotARealKeyNotARealKey0 ci-test-only"];
  };
in {
  beelink = {
    imports = [common];
    barnabee.beelink.inferenceHost = "beast.invalid";
    services.barnabee.memory.settings.replication = {
      type = "s3";
      bucket = "barnabee-ci";
      path = "beelink";
      endpoint = "http://s3.invalid:3900";
      region = "garage";
      force_path_style = true;
      access_key_id = "GK000000000000000000000000";
    };
  };
  beast = let
    placeholder = "not a model: CI evaluation only";
  in {
    imports = [common];
    # Documentation addresses (RFC 5737): the beelink and Home Assistant of a site.
    barnabee.beast.clients = ["192.0.2.10" "192.0.2.11"];
    # A one-file model needs `sha256` like any other: barnabee-inference --check-config takes
    # `path` only together with it (crates/inference/src/config.rs). The hash is the real one
    # of the file, so only loading it as ONNX would fail, which CI never does.
    services.barnabee.inference.models.ci-placeholder = {
      kind = "vad";
      file = builtins.toFile "ci-placeholder.onnx" placeholder;
      sha256 = builtins.hashString "sha256" placeholder;
    };
  };
}
