# vm-upgrade: generation A (schema N) -> generation B (schema N+1, the test-only additive
# migration) by profile + switch-to-configuration, as `nixos-rebuild switch` does: data kept,
# the pre-migration snapshot exists, services healthy, the health gate passes.
{
  testLib,
  pkgs,
}:
testLib.mkTest {
  name = "barnabee-upgrade";
  nodes = {
    # Generation B: built into the VM's store, never started itself.
    next = {
      imports = [(testLib.beelinkNode {})];
      services.barnabee.memory.package = pkgs.barnabee-memory-test-schema-next;
    };
    machine = {nodes, ...}: {
      imports = [(testLib.beelinkNode {})];
      system.switch.enable = true; # test nodes default to false
      system.extraDependencies = [nodes.next.system.build.toplevel];
    };
  };

  testScript = {nodes, ...}: ''
    ${testLib.python}
    NEXT = "${nodes.next.system.build.toplevel}"

    machine.start()
    memory_ready(machine)
    machine.wait_for_unit("barnabee-watchdog.service")
    machine.wait_for_unit("barnabee-health-gate.service")


    def gate_runs() -> str:
        return machine.succeed("systemctl show -P InvocationID barnabee-health-gate").strip()


    with subtest("generation A writes"):
        n = schema_version(machine)
        for i in range(10):
            remember(machine, f"before upgrade {i}")

    with subtest("switch to generation B: migration runs, data kept"):
        gate_before = gate_runs()
        machine.succeed(f"nix-env --profile /nix/var/nix/profiles/system --set {NEXT}")
        # A plain switch, as nixos-rebuild runs it: it succeeds only if the health gate it
        # re-runs (restartTriggers: memory's package changed) passes.
        machine.succeed(f"{NEXT}/bin/switch-to-configuration switch")
        machine.succeed(f"test $(readlink -f /run/current-system) = {NEXT}")
        memory_ready(machine)
        assert schema_version(machine) == n + 1, schema_version(machine)
        assert summaries(machine) == sorted(f"before upgrade {i}" for i in range(10))
        # The daemon snapshots before migrating (named by from/to versions).
        machine.succeed(f"ls /var/lib/private/barnabee-memory/snapshots/ | grep -q 'v{n}-to-v{n + 1}'")

    with subtest("the switch re-ran the health gate by itself, and it passed"):
        assert gate_runs() != gate_before, "the switch did not re-run barnabee-health-gate"
        machine.succeed("systemctl is-active barnabee-health-gate")
        remember(machine, "after upgrade")
        assert "after upgrade" in summaries(machine)
        machine.succeed("systemctl is-active barnabee-memory barnabee-watchdog")
  '';
}
