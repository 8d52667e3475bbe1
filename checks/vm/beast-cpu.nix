# vm-beast-cpu: the beast role without a GPU (QEMU has none): barnabee-inference runs on CPU
# with the nixpkgs onnxruntime, NVML is absent, /health says degraded (not down), metrics are
# served, and the unit has no NVIDIA device rights.
{testLib, ...}:
testLib.mkTest {
  name = "barnabee-beast-cpu";
  nodes.beast = {
    imports = [../../nixos-modules/roles/beast.nix testLib.testSite];
    barnabee.beast.gpu.enable = false;
    # The CPU test runs without model files: the daemon reports them missing in /health.
    barnabee.beast.requireModels = false;
    services.barnabee.watchdog.gate.timeout = "60s";
    virtualisation.memorySize = 2048;
  };

  testScript = ''
    ${testLib.python}

    beast.start()
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

    with subtest("metrics are served"):
        beast.succeed("curl -fsS http://127.0.0.1:7704/metrics | grep -q '^barnabee_'")

    with subtest("CPU unit: no device rights, ORT from nixpkgs"):
        assert beast.succeed("systemctl show -P DeviceAllow barnabee-inference").strip() == ""
        assert beast.succeed("systemctl show -P PrivateDevices barnabee-inference").strip() == "yes"
        env = beast.succeed("systemctl show -P Environment barnabee-inference")
        assert "ORT_DYLIB_PATH=/nix/store/" in env, env
        beast.succeed("systemd-analyze security --threshold=20 --no-pager barnabee-inference >/dev/null")

    with subtest("the Wyoming port is open to the LAN"):
        beast.wait_for_open_port(10300)
        beast.succeed("iptables -S | grep -q 'dport 10300' || nft list ruleset | grep -q 10300")
  '';
}
