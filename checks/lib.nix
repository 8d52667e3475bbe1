# Shared by the NixOS VM tests (checks/vm/*.nix): the test runner, node factories and the
# Python helpers every test script starts with.
#
# Nodes cannot set nixpkgs.overlays (runNixOSTest makes `nixpkgs.*` read-only), so `pkgs` here
# is the flake's package set that already has overlays.default (pkgs.barnabee-*).
{
  self,
  pkgs,
  sops-nix,
}: let
  inherit (pkgs) lib;
  sshKeys = import "${pkgs.path}/nixos/tests/ssh-keys.nix" pkgs;
in rec {
  # TEST ONLY values (public): the S3 key the tests import into Garage. The same secret is
  # sops-encrypted to the test age key in secrets/test/beelink.yaml (s3/secret_access_key).
  s3 = {
    keyId = "GK62951c6b33de2d71b7e318f4";
    secret = "e92dfb027e7da81609f52530fe59e1b2e3f5d7171e7d823ea0e7ede7722ce8a3";
    bucket = "barnabee";
    region = "garage";
    # Garage's cluster secret, test only (nixpkgs' garage test does the same).
    rpcSecret = "8c2d7a4c0f1e5b3a9d6e2f7c1b4a8d3e6f0c9b2a5d8e1f4c7b0a3d6e9f2c5b8a";
  };

  # runNixOSTest with our defaults. `test` is a test module ({ name; nodes; testScript; ... }).
  mkTest = test:
    pkgs.testers.runNixOSTest {
      imports = [test];
      node.specialArgs = {inherit self;};
      # Every node: our modules (nothing enabled) and sops-nix's options.
      defaults = {
        imports = [self.nixosModules.default sops-nix.nixosModules.sops];
      };
    };

  # The site values a real host sets in hosts/<host>/site.nix.
  testSite = {
    barnabee.operatorKeys = [sshKeys.snakeOilPublicKey];
  };

  # A Garage S3 server (nixpkgs' services.garage with garage 2.x).
  s3Node = {
    services.garage = {
      enable = true;
      package = pkgs.garage_2;
      settings = {
        replication_factor = 1;
        rpc_secret = s3.rpcSecret;
        rpc_bind_addr = "[::]:3901";
        s3_api = {
          api_bind_addr = "[::]:3900";
          s3_region = s3.region;
          root_domain = ".s3.garage";
        };
      };
    };
    virtualisation.diskSize = 2048; # Garage wants >= 1 GiB free
    virtualisation.memorySize = 1024;
    networking.firewall.allowedTCPPorts = [3900 3901];
    environment.systemPackages = [pkgs.awscli2 pkgs.python3];
  };

  # The replica section the memory daemon uses in the tests (path-style S3 on the s3 node).
  replication = path: {
    type = "s3";
    inherit (s3) bucket region;
    inherit path;
    endpoint = "http://s3:3900";
    force_path_style = true;
    access_key_id = s3.keyId;
    sync_interval = 1;
  };

  # The beelink role as tests run it: memory (+ replication when `replicaPath` is set) and the
  # watchdog. Voice and agents need a microphone, Home Assistant and the beast; they are
  # covered by image-boot. `plainSecret`: the S3 secret is a plain test file under /etc (as
  # selfhostblocks' hardcoded secrets); vm-secrets sets it false and wires sops instead.
  beelinkNode = {
    replicaPath ? null,
    plainSecret ? true,
  }: {config, ...}: {
    imports = [../nixos-modules/roles/beelink.nix testSite];
    # Direct kernel boot has no ESP: switching nodes get a no-op boot loader installer (as
    # nixpkgs' switch-test does). Nodes that boot a real loader (directBoot off) keep theirs.
    system.build.installBootLoader = lib.mkIf config.virtualisation.directBoot.enable (lib.mkForce "${pkgs.coreutils}/bin/true");
    # Test nodes ship no bin/switch-to-configuration unless asked (nixos-test-base.nix,
    # nixpkgs PR #340445), and every beelink test node is switched to (upgrade, rollback) or
    # installed from (make-disk-image runs `switch-to-configuration boot`): ask.
    system.switch.enable = true;
    barnabee.beelink.inferenceHost = "beast";
    barnabee.beelink.replication.enable = replicaPath != null;
    services.barnabee.voice.enable = lib.mkForce false;
    services.barnabee.agents.enable = lib.mkForce false;
    services.barnabee.watchdog.gate.timeout = "60s";
    services.barnabee.memory = lib.mkIf (replicaPath != null) {
      settings.replication = replication replicaPath;
      replication.secretAccessKeyFile = lib.mkIf plainSecret "/etc/barnabee-test/s3-secret-access-key";
    };
    environment.etc."barnabee-test/s3-secret-access-key" = lib.mkIf plainSecret {
      text = s3.secret;
      mode = "0400";
    };
    environment.systemPackages = [pkgs.curl pkgs.jq pkgs.sqlite pkgs.barnabee-replicator pkgs.litestream pkgs.awscli2];
    virtualisation.memorySize = 1536;
    virtualisation.diskSize = 2048;
  };

  # Python helpers shared by the test scripts (type-checked with the script).
  python = ''
    import json
    import shlex

    S3_KEY_ID = "${s3.keyId}"
    S3_SECRET = "${s3.secret}"
    S3_BUCKET = "${s3.bucket}"
    MEMORY = "http://127.0.0.1:7701"
    OWNER = "vm-test"


    def garage_setup(node) -> None:
        """Single-node layout, the test key imported, the bucket created and allowed."""
        node.wait_for_unit("garage.service")
        node.wait_for_open_port(3900)
        node_id = node.succeed("garage node id -q | cut -d@ -f1").strip()
        node.succeed(f"garage layout assign -z dc1 -c 1G {node_id}")
        node.succeed("garage layout apply --version 1")
        node.succeed(f"garage key import --yes -n barnabee {S3_KEY_ID} {S3_SECRET}")
        node.succeed(f"garage bucket create {S3_BUCKET}")
        node.succeed(f"garage bucket allow --read --write --owner {S3_BUCKET} --key barnabee")


    def aws_cmd(args: str) -> str:
        """An aws CLI command line against the Garage node, with the test key."""
        env = (
            f"AWS_ACCESS_KEY_ID={S3_KEY_ID} AWS_SECRET_ACCESS_KEY={S3_SECRET} "
            "AWS_DEFAULT_REGION=garage AWS_EC2_METADATA_DISABLED=true"
        )
        return f"{env} aws --endpoint-url http://s3:3900 {args}"


    def aws(node, args: str) -> str:
        return node.succeed(aws_cmd(args))


    def memory_ready(node) -> None:
        node.wait_for_unit("barnabee-memory.service")
        node.wait_until_succeeds(f"curl -fsS {MEMORY}/health")


    def remember(node, summary: str) -> None:
        """One acknowledged write: curl -f only succeeds on a 2xx."""
        body = json.dumps({
            "summary": summary,
            "content": summary,
            "memory_type": "fact",
            "owner": OWNER,
            "visibility": "family",
        })
        node.succeed(
            "curl -fsS -X POST -H 'content-type: application/json' "
            f"--data-binary {shlex.quote(body)} {MEMORY}/v1/memories"
        )


    def summaries(node) -> list:
        out = node.succeed(f"curl -fsS '{MEMORY}/v1/memories?requester={OWNER}&limit=100'")
        data = json.loads(out)
        items = data if isinstance(data, list) else data.get("memories", data.get("items", []))
        return sorted(item["summary"] for item in items)


    def db_summaries(node, db: str) -> list:
        out = node.succeed(f"sqlite3 {db} 'SELECT summary FROM memories ORDER BY summary'")
        return sorted(line for line in out.splitlines() if line)


    def schema_version(node) -> int:
        return int(json.loads(node.succeed(f"curl -fsS {MEMORY}/v1/stats"))["schema_version"])


    def journal_has(node, unit: str, field: str) -> None:
        """Our structured fields reach journald (journalctl -o json)."""
        node.succeed(
            f"journalctl -u {unit} -o json --no-pager | jq -e 'select(.{field} != null)' >/dev/null"
        )
  '';
}
