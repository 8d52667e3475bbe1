# vm-rollback: the three rollback layers.
#  1. B -> A by `nix-env --rollback` + switch-to-configuration (what `nixos-rebuild switch
#     --rollback` does): A keeps working on B's (additive) schema, nothing lost.
#  2. The pre-switch check refuses an unsafe downgrade: a database whose min_reader_version is
#     newer than A's code (as a future generation would leave it) makes A's
#     switch-to-configuration fail before activating anything; the database is untouched.
#  3. A live switch into a generation whose memory daemon never becomes healthy: the health
#     gate fails, records an incident, and the watchdog's rollback unit switches back.
#  4. Boot counting: a generation that never becomes healthy at boot is never blessed, and
#     systemd-boot falls back to the previous one after `tries` boots (26.11 nixpkgs).
{
  testLib,
  pkgs,
}: let
  # A daemon that can never open its database (/var/empty is read-only).
  brokenMemory = {
    services.barnabee.memory.settings.database.path = "/var/empty/memory.db";
  };
in
  testLib.mkTest {
    name = "barnabee-rollback";
    nodes = {
      next = {
        imports = [(testLib.beelinkNode {})];
        services.barnabee.memory.package = pkgs.barnabee-memory-test-schema-next;
      };
      broken = {
        imports = [(testLib.beelinkNode {}) brokenMemory];
        services.barnabee.watchdog.gate.timeout = "30s";
      };
      machine = {nodes, ...}: {
        imports = [(testLib.beelinkNode {})];
        services.barnabee.watchdog.gate.timeout = "30s";
        system.switch.enable = true;
        system.extraDependencies = [
          nodes.next.system.build.toplevel
          nodes.broken.system.build.toplevel
        ];
      };

      # Boot counting needs a real boot loader in the VM (direct kernel boot cannot boot into
      # another generation) and a bad generation whose gate never passes. Its rollback command
      # is a no-op so that only systemd-boot's fallback is tested here.
      bootbad = {
        imports = [(testLib.beelinkNode {}) brokenMemory];
        services.barnabee.watchdog.gate.timeout = "30s";
        services.barnabee.watchdog.rollbackCommand = ["/run/current-system/sw/bin/true"];
        barnabee.bootCounting.tries = 2;
        virtualisation.useBootLoader = true;
        virtualisation.useEFIBoot = true;
        virtualisation.directBoot.enable = false;
      };
      bootvm = {nodes, ...}: {
        imports = [(testLib.beelinkNode {})];
        services.barnabee.watchdog.gate.timeout = "30s";
        barnabee.bootCounting.tries = 2;
        virtualisation.useBootLoader = true;
        virtualisation.useEFIBoot = true;
        virtualisation.directBoot.enable = false;
        system.switch.enable = true;
        system.extraDependencies = [nodes.bootbad.system.build.toplevel];
      };
    };

    testScript = {nodes, ...}: ''
      ${testLib.python}
      A = "${nodes.machine.system.build.toplevel}"
      NEXT = "${nodes.next.system.build.toplevel}"
      BROKEN = "${nodes.broken.system.build.toplevel}"
      GOOD_BOOT = "${nodes.bootvm.system.build.toplevel}"
      BAD_BOOT = "${nodes.bootbad.system.build.toplevel}"
      PROFILE = "/nix/var/nix/profiles/system"
      DB = "/var/lib/barnabee-memory/memory.db"


      def current(node) -> str:
          return node.succeed("readlink -f /run/current-system").strip()


      machine.start()
      # Direct-boot test VMs may have no system profile yet: make A generation one.
      machine.succeed(f"nix-env --profile {PROFILE} --set {A}")
      memory_ready(machine)
      remember(machine, "written by A")

      with subtest("A -> B, then B -> A with the rollback: data kept"):
          machine.succeed(f"nix-env --profile {PROFILE} --set {NEXT}")
          machine.succeed(f"{NEXT}/bin/switch-to-configuration switch")
          memory_ready(machine)
          remember(machine, "written by B")
          machine.succeed(f"nix-env --profile {PROFILE} --rollback")
          machine.succeed(f"{PROFILE}/bin/switch-to-configuration switch")
          assert current(machine) == A, current(machine)
          memory_ready(machine)
          assert summaries(machine) == ["written by A", "written by B"], summaries(machine)
          remember(machine, "written by A after rollback")

      with subtest("the pre-switch check refuses an unsafe downgrade, database untouched"):
          machine.succeed("systemctl stop barnabee-memory")
          machine.succeed(
              f"sqlite3 {DB} \"UPDATE barnabee_meta SET value='99' WHERE key='min_reader_version'\""
          )
          before = machine.succeed(f"sha256sum {DB}")
          status, out = machine.execute(f"{A}/bin/switch-to-configuration switch 2>&1")
          assert status != 0, "switch into a generation that cannot read the database went ahead"
          assert "barnabee-memory-schema" in out, out
          assert machine.succeed(f"sha256sum {DB}") == before, "the refused switch changed the database"
          machine.succeed(
              f"sqlite3 {DB} \"UPDATE barnabee_meta SET value='1' WHERE key='min_reader_version'\""
          )
          machine.succeed("systemctl start barnabee-memory")
          memory_ready(machine)

      with subtest("live switch into a broken generation: the gate rolls back"):
          # A as the newest generation, so the one before the broken one is A (not B).
          machine.succeed(f"nix-env --profile {PROFILE} --set {A}")
          machine.succeed(f"nix-env --profile {PROFILE} --set {BROKEN}")
          # A plain switch, nothing restarted by hand: the switch re-runs the gate
          # (restartTriggers), the gate fails after 30 s and starts barnabee-rollback, which
          # waits for this switch to release its lock, then switches back to A.
          status, out = machine.execute(f"{BROKEN}/bin/switch-to-configuration switch 2>&1")
          assert status != 0, "the switch into a broken generation reported success"
          assert "barnabee-health-gate" in out, out
          machine.wait_until_succeeds(f"test $(readlink -f /run/current-system) = {A}", timeout=300)
          machine.wait_until_succeeds(f"test $(readlink -f {PROFILE}) = {A}", timeout=60)
          memory_ready(machine)
          assert "written by A after rollback" in summaries(machine)
          machine.succeed(
              "journalctl -o json --no-pager | "
              "jq -e 'select(.EVENT == \"incident\" and .SEVERITY == \"P1\")' >/dev/null"
          )
      machine.shutdown()

      with subtest("boot counting: a generation never healthy at boot falls back"):
          bootvm.start(allow_reboot=True)
          bootvm.wait_for_unit("multi-user.target")
          bootvm.wait_until_succeeds("systemctl is-active barnabee-health-gate")
          bootvm.wait_for_unit("systemd-bless-boot.service")
          bootvm.succeed(f"nix-env --profile {PROFILE} --set {BAD_BOOT}")
          bootvm.succeed(f"{BAD_BOOT}/bin/switch-to-configuration boot")
          # New entries carry the counter: +2 tries left.
          bootvm.succeed("ls /boot/loader/entries/ | grep -q '+2'")
          for attempt in (1, 2):
              bootvm.reboot()
              bootvm.wait_for_unit("multi-user.target")
              assert current(bootvm) == BAD_BOOT, f"attempt {attempt}: {current(bootvm)}"
              bootvm.wait_until_succeeds("systemctl is-failed barnabee-health-gate", timeout=120)
              bootvm.fail("systemctl is-active boot-complete.target")
          bootvm.reboot()
          bootvm.wait_for_unit("multi-user.target")
          assert current(bootvm) == GOOD_BOOT, current(bootvm)
          # The bad entry is marked bad (+0-2); the good one was blessed (no counter).
          bootvm.succeed("ls /boot/loader/entries/ | grep -q '+0-2'")
          memory_ready(bootvm)
    '';
  }
