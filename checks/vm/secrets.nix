# vm-secrets: real sops-nix decryption with the committed TEST-ONLY age key: the encrypted S3
# secret (secrets/test/beelink.yaml) is decrypted at activation, handed to barnabee-memory with
# LoadCredential=, and the daemon uses it: replication to Garage works, which it cannot without
# the right secret. The secret is in no store path of the system.
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
        # The test key is placed before sops runs (sops-nix's own test does the same).
        age.keyFile = "/run/age-keys.txt";
        age.sshKeyPaths = [];
        gnupg.sshKeyPaths = [];
        secrets."s3/secret_access_key".restartUnits = ["barnabee-memory.service"];
      };
      system.activationScripts.earlySecrets.text = ''
        install -m 0400 ${../../secrets/test/age-key.txt} /run/age-keys.txt
      '';
      system.activationScripts.setupSecrets.deps = ["earlySecrets"];
    };
  };

  testScript = {nodes, ...}: ''
    ${testLib.python}
    SECRET_PATH = "${nodes.beelink.sops.secrets."s3/secret_access_key".path}"

    s3.start()
    garage_setup(s3)
    beelink.start()

    with subtest("sops-nix decrypted the secret with the test key, root-only"):
        beelink.wait_for_file(SECRET_PATH)
        assert beelink.succeed(f"cat {SECRET_PATH}").strip() == S3_SECRET
        assert beelink.succeed(f"stat -L -c '%U %a' {SECRET_PATH}").strip() == "root 400"

    with subtest("the daemon gets it as a credential, never through the store"):
        memory_ready(beelink)
        cred = "/run/credentials/barnabee-memory.service/s3-secret-access-key"
        assert beelink.succeed(f"cat {cred}").strip() == S3_SECRET
        toml = beelink.succeed("readlink -f /etc/barnabee/memory.toml").strip()
        beelink.succeed(f"grep -q 'secret_access_key_file = \"s3-secret-access-key\"' {toml}")
        beelink.fail(f"grep -Rq {S3_SECRET} {toml} /etc/systemd/system/barnabee-memory.service.d/")

    with subtest("the daemon uses it: memories reach the S3 bucket"):
        remember(beelink, "secret-backed memory")
        s3.wait_until_succeeds(
            aws_cmd(f"s3 ls --recursive s3://{S3_BUCKET}/secrets-test/") + " | grep -q '\\.ltx$'",
            timeout=120,
        )
  '';
}
