# vm-backup: memories written on the beelink survive kill -9 and a power cut, are replicated to
# S3 (Garage); the real Litestream restores our replica and we restore one Litestream wrote; a
# replacement node restores and takes over the replica once the old one is dead; a corrupted
# replica object is refused, naming it.
{
  testLib,
  pkgs,
}:
testLib.mkTest {
  name = "barnabee-backup";
  nodes = {
    s3 = testLib.s3Node;
    beelink = testLib.beelinkNode {replicaPath = "beelink";};
    # A replacement beelink: empty state, the same replica path. The memory daemon restores
    # before serving, then replicates there itself. Two writers on one replica path are unsafe
    # (Litestream semantics: each would ship its own WAL over the other's), so, as an operator
    # would, the test starts it only after the old beelink is dead for good (last subtests).
    fresh = testLib.beelinkNode {replicaPath = "beelink";};
  };

  testScript = let
    # Two litestream.yml files for the real Litestream (and our replicator CLI, which accepts
    # the same subset). `litestream replicate -config` replicates EVERY database in its file,
    # so the one Litestream runs must hold only its own database: with ours in it too it would
    # be a second writer to the daemon's replica and checkpoint the daemon's WAL.
    litestreamYml = pkgs.writeText "litestream.yml" (builtins.toJSON {
      dbs = [
        {
          path = "/var/lib/barnabee-memory/memory.db";
          replicas = [
            {
              type = "s3";
              bucket = testLib.s3.bucket;
              path = "beelink";
              endpoint = "http://s3:3900";
              region = testLib.s3.region;
              force-path-style = true;
              access-key-id = testLib.s3.keyId;
              secret-access-key = testLib.s3.secret;
            }
          ];
        }
      ];
    });
    peerYml = pkgs.writeText "litestream-peer.yml" (builtins.toJSON {
      dbs = [
        {
          path = "/root/peer.db";
          replicas = [
            {
              type = "s3";
              bucket = testLib.s3.bucket;
              path = "litestream-peer";
              endpoint = "http://s3:3900";
              region = testLib.s3.region;
              force-path-style = true;
              access-key-id = testLib.s3.keyId;
              secret-access-key = testLib.s3.secret;
              sync-interval = "1s";
            }
          ];
        }
      ];
    });
  in ''
    ${testLib.python}
    LS = "${litestreamYml}"
    LS_PEER = "${peerYml}"
    DB = "/var/lib/barnabee-memory/memory.db"

    s3.start()
    garage_setup(s3)

    beelink.start()
    memory_ready(beelink)

    acked: list = []
    with subtest("writes are acknowledged and journald carries our fields"):
        for i in range(20):
            remember(beelink, f"backup memory {i:02d}")
            acked.append(f"backup memory {i:02d}")
        assert summaries(beelink) == sorted(acked), summaries(beelink)
        journal_has(beelink, "barnabee-memory", "REQUEST_ID")

    with subtest("kill -9: systemd restarts the daemon, nothing acknowledged is lost"):
        before = int(beelink.get_unit_property("barnabee-memory", "NRestarts"))
        beelink.succeed("systemctl kill --signal=KILL barnabee-memory")
        beelink.wait_until_succeeds(
            f"test $(systemctl show -P NRestarts barnabee-memory) -gt {before}"
        )
        memory_ready(beelink)
        assert summaries(beelink) == sorted(acked)

    with subtest("power cut: every acknowledged memory survives"):
        for i in range(20, 30):
            remember(beelink, f"backup memory {i:02d}")
            acked.append(f"backup memory {i:02d}")
        beelink.crash()
        beelink.start()
        memory_ready(beelink)
        assert summaries(beelink) == sorted(acked), summaries(beelink)

    with subtest("the replica catches up (our restore CLI sees every memory)"):
        beelink.wait_until_succeeds(
            f"rm -f /tmp/r.db && barnabee-replicator restore -config {LS} -o /tmp/r.db {DB} "
            f"&& test $(sqlite3 /tmp/r.db 'SELECT count(*) FROM memories') -eq {len(acked)}",
            timeout=120,
        )
        assert db_summaries(beelink, "/tmp/r.db") == sorted(acked)

    with subtest("the real Litestream restores our replica, byte-identical to ours"):
        beelink.succeed("systemctl stop barnabee-memory")
        beelink.succeed("rm -f /tmp/ours.db /tmp/theirs.db")
        beelink.succeed(f"barnabee-replicator restore -config {LS} -o /tmp/ours.db {DB}")
        beelink.succeed(f"litestream restore -config {LS} -o /tmp/theirs.db {DB}")
        assert db_summaries(beelink, "/tmp/theirs.db") == sorted(acked)
        beelink.succeed("cmp /tmp/ours.db /tmp/theirs.db")
        beelink.succeed("systemctl start barnabee-memory")
        memory_ready(beelink)

    with subtest("we restore a replica the real Litestream wrote"):
        beelink.succeed(
            "sqlite3 /root/peer.db \"PRAGMA journal_mode=WAL; "
            "CREATE TABLE t(x TEXT); INSERT INTO t VALUES ('from litestream');\""
        )
        beelink.succeed(f"systemd-run --unit=litestream-peer litestream replicate -config {LS_PEER}")
        beelink.succeed("sqlite3 /root/peer.db \"INSERT INTO t VALUES ('second write')\"")
        beelink.wait_until_succeeds(
            f"rm -f /tmp/peer.db && barnabee-replicator restore -config {LS_PEER} -o /tmp/peer.db /root/peer.db "
            "&& test $(sqlite3 /tmp/peer.db 'SELECT count(*) FROM t') -eq 2",
            timeout=120,
        )
        beelink.succeed("systemctl stop litestream-peer")
        assert beelink.succeed("sqlite3 /tmp/peer.db 'SELECT x FROM t ORDER BY x'").split("\n")[0] == "from litestream"

    with subtest("the old beelink dies; its replacement restores, serves and takes over the replica"):
        # A clean stop ships whatever is committed (shutdown_timeout), then the machine is gone:
        # from here on the replacement is the only writer of the replica path.
        beelink.succeed("systemctl stop barnabee-memory")
        beelink.shutdown()
        fresh.start()
        memory_ready(fresh)
        assert summaries(fresh) == sorted(acked), summaries(fresh)
        remember(fresh, "written by the replacement")
        acked.append("written by the replacement")
        fresh.wait_until_succeeds(
            f"rm -f /tmp/r.db && barnabee-replicator restore -config {LS} -o /tmp/r.db {DB} "
            f"&& test $(sqlite3 /tmp/r.db 'SELECT count(*) FROM memories') -eq {len(acked)}",
            timeout=120,
        )
        assert db_summaries(fresh, "/tmp/r.db") == sorted(acked)

    with subtest("a corrupted replica object is refused, naming it"):
        objects = [
            line.split()[-1]
            for line in aws(s3, f"s3 ls --recursive s3://{S3_BUCKET}/beelink/").splitlines()
            if line.strip().endswith(".ltx")
        ]
        assert objects, "no LTX objects in the replica"
        victim = objects[-1]
        aws(s3, f"s3 cp s3://{S3_BUCKET}/{victim} /tmp/victim.ltx")
        # Flip one byte in the middle of the object.
        s3.succeed(
            "python3 -c 'import sys; p=sys.argv[1]; b=bytearray(open(p,\"rb\").read()); "
            "b[len(b)//2]^=0xff; open(p,\"wb\").write(b)' /tmp/victim.ltx"
        )
        aws(s3, f"s3 cp /tmp/victim.ltx s3://{S3_BUCKET}/{victim}")
        fresh.succeed("systemctl stop barnabee-memory")
        status, out = fresh.execute(
            f"barnabee-replicator restore -config {LS} -o /tmp/corrupt.db {DB} 2>&1"
        )
        assert status != 0, "restore accepted a corrupted object"
        assert victim.split("/")[-1] in out, out
        fresh.fail("test -e /tmp/corrupt.db")
  '';
}
