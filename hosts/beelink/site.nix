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
#
# Optional: where alerts go (the watchdog's notifier; docs/nixos.md "Monitoring and
# notifications"). Home Assistant's URL and token default to the agents' ones.
#
#   services.barnabee.watchdog.notify.homeAssistant = {
#     enable = true;
#     services = [ "mobile_app_anna_phone" ];   # notify.<service>; persistent notifications too
#     minSeverity = "warning";
#   };
#   services.barnabee.watchdog.notify.email = {
#     enable = true; host = "smtp.example.org"; username = "barnabee@example.org";
#     passwordFile = "/run/secrets/notify/smtp_password";   # sops.secrets."notify/smtp_password" = { };
#                                                         # and the key in secrets/beelink.yaml
#     from = "Barnabee <barnabee@example.org>"; to = [ "anna@example.org" ]; minSeverity = "critical";
#   };
_: {
}
