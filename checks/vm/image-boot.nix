# vm-image-boot: the beelink image (system.build.images.qemu-efi: the same image module as the
# raw-efi we ship) boots in a VM through its own systemd-boot, every barnabee unit comes up
# (READY=1), answers /health, and is hardened on the real system (drop-ins included); the result
# is a normal NixOS install (a system profile, so nixos-rebuild and rollback work on it), and the
# monitoring the beelink ships (Prometheus, Alertmanager, node_exporter) runs on loopback.
{
  testLib,
  pkgs,
}:
testLib.mkTest {
  name = "barnabee-image-boot";
  nodes.machine = {
    imports = [(testLib.beelinkNode {})];
    # Everything the beelink runs, as shipped.
    services.barnabee.voice.enable = pkgs.lib.mkForce true;
    services.barnabee.agents.enable = pkgs.lib.mkForce true;
    # Boot the image's bytes, not the test framework's kernel + host store.
    virtualisation.directBoot.enable = false;
    virtualisation.mountHostNixStore = false;
    virtualisation.useEFIBoot = true;
    virtualisation.useDefaultFilesystems = false;
    # qemu-vm.nix makes `fileSystems` = mkVMOverride virtualisation.fileSystems (its 9p
    # mounts), which would drop plain fileSystems definitions (and the image module's
    # mkImageMediaOverride ones): the image's layout goes here, forced, as nixpkgs'
    # appliance-repart-image test does.
    virtualisation.fileSystems = pkgs.lib.mkForce {
      "/" = {
        device = "/dev/disk/by-label/nixos";
        fsType = "ext4";
      };
      "/boot" = {
        device = "/dev/disk/by-label/ESP";
        fsType = "vfat";
      };
    };
    # A sound card for barnabee-voice (ALSA through DeviceAllow=char-alsa).
    virtualisation.qemu.options = ["-device" "intel-hda" "-device" "hda-duplex"];
    virtualisation.diskSize = 4096;
  };

  testScript = {nodes, ...}: ''
    import glob
    import os
    import subprocess
    import tempfile

    ${testLib.python}

    images = glob.glob("${nodes.machine.system.build.images.qemu-efi}/*.qcow2")
    assert len(images) == 1, images
    disk = tempfile.NamedTemporaryFile(suffix=".qcow2")
    subprocess.run(
        ["${pkgs.qemu_kvm}/bin/qemu-img", "create", "-f", "qcow2", "-F", "qcow2", "-b", images[0], disk.name],
        check=True,
    )
    os.environ["NIX_DISK_IMAGE"] = disk.name

    machine.start()
    machine.wait_for_unit("multi-user.target")

    with subtest("booted by systemd-boot from the image"):
        machine.succeed("bootctl status >/dev/null")
        machine.succeed("ls /boot/loader/entries/ | grep -q nixos")

    with subtest("the ESP is the appliance's 1 GiB one (10 generations fit)"):
        size = int(machine.succeed("df --output=size -B1M /boot | tail -n1").strip())
        assert size > 900, f"/boot is {size} MiB"

    with subtest("the runbook's commands are on PATH"):
        machine.succeed("command -v barnabee barnabee-replicator sqlite3 aplay arecord")

    with subtest("a normal install: one system generation"):
        gens = machine.succeed("nix-env --profile /nix/var/nix/profiles/system --list-generations")
        assert len(gens.strip().splitlines()) == 1, gens

    for role, port in (("memory", 7701), ("agents", 7702), ("voice", 7703), ("watchdog", 7705)):
        with subtest(f"barnabee-{role}: active via READY=1, /health answers, hardened"):
            machine.wait_for_unit(f"barnabee-{role}.service")
            assert machine.get_unit_property(f"barnabee-{role}", "Type") == "notify"
            code = machine.succeed(
                f"curl -s -o /tmp/{role}.json -w '%{{http_code}}' http://127.0.0.1:{port}/health"
            )
            assert code in ("200", "503"), f"{role}: /health gave {code}"
            machine.succeed(f"jq -e . /tmp/{role}.json >/dev/null")
            machine.succeed(f"systemd-analyze security --threshold=20 --no-pager barnabee-{role} >/dev/null")

    with subtest("the memory daemon serves, and logs structured fields to journald"):
        memory_ready(machine)
        remember(machine, "from the image")
        assert summaries(machine) == ["from the image"]
        journal_has(machine, "barnabee-memory", "REQUEST_ID")
        journal_has(machine, "barnabee-memory", "LATENCY_MS")

    with subtest("monitoring as shipped: Prometheus (30 d, the rules) scrapes the daemons, Alertmanager and node_exporter, all on loopback"):
        for unit, port in (("prometheus", 9090), ("alertmanager", 9093), ("prometheus-node-exporter", 9100)):
            machine.wait_for_unit(f"{unit}.service")
            machine.wait_for_open_port(port)
        prom = "http://127.0.0.1:9090/api/v1"
        machine.succeed(f"curl -sf {prom}/status/flags | jq -e '.data[\"storage.tsdb.retention.time\"] == \"30d\"'")
        machine.succeed(f"curl -sf {prom}/rules | jq -e '[.data.groups[].rules[]] | length > 0'")
        machine.wait_until_succeeds(f"curl -sf {prom}/alertmanagers | jq -e '.data.activeAlertmanagers | length == 1'", timeout=60)
        for job in ("barnabee-memory", "barnabee-watchdog", "node"):
            machine.wait_until_succeeds(
                f"curl -sf {prom}/targets | jq -e '[.data.activeTargets[] | select(.labels.job == \"{job}\" and .labels.host == \"beelink\" and .health == \"up\")] | length == 1'",
                timeout=120,
            )
        # Nothing of the monitoring stack on another address, no Alertmanager gossip port.
        machine.fail("ss -Htln | grep -E ':(9090|9093|9094|9100) ' | grep -v '127.0.0.1:'")
  '';
}
