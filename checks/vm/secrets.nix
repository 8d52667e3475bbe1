# vm-secrets: the first boot of a host and real sops-nix decryption, with the committed
# TEST-ONLY age key (secrets/test/age-key.txt) standing in for the host's age identity.
#  1. First boot before provisioning (no /var/lib/sops-nix/key.txt, as on a freshly flashed
#     image): sops-nix cannot decrypt, /run/secrets/... is missing, and barnabee-memory still
#     starts (the module's SetCredential= default), serves, and says "not provisioned"
#     in /health (degraded, not down); the health gate passes, so the boot is blessed.
#  2. The operator installs the host key and re-activates (docs/nixos.md "First boot"): the
#     secret is decrypted, memory is restarted (sops restartUnits), gets it as a credential,
#     and replication to Garage works, which it cannot without the right secret. The secret is
#     in no store path of the system.
# (The key is installed at test time, not by an activation script ordered before
# setupSecrets: sops-nix may run from systemd units instead of activation scripts.)
{testLib, ...}:
testLib.mkTest {
  name = "barnabee-secrets";
  nodes = {
    s3 = testLib.s3Node;
    beelink = {config, ...}: {
      imports = [
        (testLib.beelinkNode {
          replicaPath = "secrets-test";
          plainSecret = false;
        })
      ];
      services.barnabee.memory.replication.secretAccessKeyFile = config.sops.secrets."s3/secret_access_key".path;
      sops = {
        defaultSopsFile = ../../secrets/test/beelink.yaml;
        # As hosts/*/default.nix: the host's age identity, provisioned onto the disk.
        age.keyFile = "/var/lib/sops-nix/key.txt";
        age.sshKeyPaths = [];
        gnupg.sshKeyPaths = [];
        secrets."s3/secret_access_key".restartUnits = ["barnabee-memory.service"];
      };
    };
  };

  testScript = {nodes, ...}: ''
    ${testLib.python}
    SECRET_PATH = "${nodes.beelink.sops.secrets."s3/secret_access_key".path}"
    TEST_KEY = "${../../secrets/test/age-key.txt}"
    CRED = "/run/credentials/barnabee-memory.service/s3-secret-access-key"

    s3.start()
    garage_setup(s3)
    beelink.start()

    with subtest("first boot, not provisioned: memory serves, degraded, the gate passes"):
        memory_ready(beelink)
        beelink.fail(f"test -e {SECRET_PATH}")
        # The module's SetCredential= default: one newline, which the daemon reads as empty.
        assert beelink.succeed(f"stat -c %s {CRED}").strip() == "1"
        code = beelink.succeed(
            f"curl -s -o /tmp/health.json -w '%{{http_code}}' {MEMORY}/health"
        ).strip()
        body = beelink.succeed("cat /tmp/health.json")
        assert code == "200", f"/health {code}: {body}"
        assert "not provisioned" in body, body
        remember(beelink, "written before provisioning")
        beelink.wait_for_unit("barnabee-health-gate.service")

    with subtest("the host key arrives: sops-nix decrypts, memory restarts with it"):
        before = beelink.succeed("systemctl show -P MainPID barnabee-memory").strip()
        beelink.succeed(f"install -D -m 0400 {TEST_KEY} /var/lib/sops-nix/key.txt")
        beelink.succeed("/run/current-system/bin/switch-to-configuration test")
        beelink.wait_for_file(SECRET_PATH)
        assert beelink.succeed(f"cat {SECRET_PATH}").strip() == S3_SECRET
        assert beelink.succeed(f"stat -L -c '%U %a' {SECRET_PATH}").strip() == "root 400"
        beelink.wait_until_succeeds(
            f"test $(systemctl show -P MainPID barnabee-memory) != {before}"
        )
        memory_ready(beelink)

    with subtest("the daemon gets it as a credential, never through the store"):
        assert beelink.succeed(f"cat {CRED}").strip() == S3_SECRET
        toml = beelink.succeed("readlink -f /etc/barnabee/memory.toml").strip()
        beelink.succeed(f"grep -q 'secret_access_key_file = \"s3-secret-access-key\"' {toml}")
        beelink.fail(f"grep -Rq {S3_SECRET} {toml} /etc/systemd/system/barnabee-memory.service.d/")
        beelink.wait_until_succeeds(f"curl -fsS {MEMORY}/health | grep -vq 'not provisioned'")

    with subtest("the daemon uses it: memories reach the S3 bucket"):
        remember(beelink, "secret-backed memory")
        s3.wait_until_succeeds(
            aws_cmd(f"s3 ls --recursive s3://{S3_BUCKET}/secrets-test/") + " | grep -q '\\.ltx$'",
            timeout=120,
        )
  '';
}
