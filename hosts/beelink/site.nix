# Site values for the beelink: the operator sets these (nothing here is a placeholder that
# would silently work; each unset value fails evaluation with an assertion saying what to set).
#
#   barnabee.operatorKeys = [ "ssh-ed25519 AAAA... alice@laptop" ];
#   barnabee.beelink.inferenceHost = "beast.lan";
#   services.barnabee.memory.settings.replication = {
#     type = "s3";
#     bucket = "barnabee-memory";
#     path = "beelink";
#     endpoint = "https://s3.eu-central-003.backblazeb2.com";
#     region = "eu-central-003";
#     access_key_id = "<key id>";           # the secret half is secrets/beelink.yaml: s3/secret_access_key
#   };
_: {
}
