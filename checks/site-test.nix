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
  beast = {
    imports = [common];
    services.barnabee.inference.models.ci-placeholder = {
      kind = "vad";
      file = builtins.toFile "ci-placeholder.onnx" "not a model: CI evaluation only";
    };
  };
}
