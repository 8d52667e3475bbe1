# services.barnabee.inference: the ONNX model server (HTTP 7704, Wyoming 10300), NVML monitor.
#
# GPU (beast): `gpu.enable` opens exactly the NVIDIA character devices under
# DevicePolicy=closed (the pattern of nixpkgs' ollama module; char-nvidia-frontend per
# nixpkgs PR #331125), keeps ProcSubset=all (NVML and CUDA read /proc/driver/nvidia) and turns
# MemoryDenyWriteExecute off (CUDA JIT-compiles PTX). If CUDA fails under the sandbox: look
# for "devices cgroup" denials in `journalctl -k`, compare `grep nvidia /proc/devices` with the
# list below.
{
  config,
  lib,
  pkgs,
  ...
}: let
  blib = import ./lib.nix {inherit lib;};
  models = import ./models.nix {inherit lib;};
  inherit (lib) mkOption types;
in {
  imports = [
    (blib.mkDaemon {
      role = "inference";
      port = 7704;
      description = "the Barnabee inference daemon";
      extraOptions = {
        onnxruntime = lib.mkPackageOption pkgs "onnxruntime" {
          extraDescription = "The beast role sets a CUDA build (`onnxruntime.override { cudaSupport = true; }`) when the GPU is on.";
        };
        espeakNg = lib.mkPackageOption pkgs "espeak-ng" {
          extraDescription = "TTS phonemes: run as a subprocess (`[runtime] espeak_ng`), never linked (GPL-3.0).";
        };
        models = models.option "inference";
        gpu.enable = mkOption {
          type = types.bool;
          default = false;
          description = "Give the daemon the NVIDIA devices (and nothing else). Off: CPU only, NVML absent (degraded /health).";
        };
        wyomingPort = mkOption {
          type = types.port;
          default = 10300;
          description = "Port of the Wyoming server (`[wyoming] listen`, on the HTTP listener's address; opened in the firewall with openFirewall).";
        };
        openFirewall = mkOption {
          type = types.bool;
          default = false;
          description = "Open the HTTP port and the Wyoming port to every address. Prefer `allowFrom`.";
        };
        allowFrom = mkOption {
          type = blib.allowFromType;
          default = [];
          example = ["192.168.1.20" "192.168.1.30" "fd00::20"];
          description = ''
            Addresses or prefixes (IPv4 or IPv6, optionally /len) allowed to reach the HTTP and
            Wyoming ports: the beelink and the Home Assistant host, not the whole LAN. Rendered
            as nftables rules in networking.firewall.extraInputRules (nftables firewall only;
            the appliance profile turns it on).
          '';
        };
      };
      extraConfig = cfg: let
        ports = [
          (lib.toInt (lib.last (lib.splitString ":" cfg.settings.service.listen)))
          cfg.wyomingPort
        ];
        allowRules = addrs:
          blib.nftAllowRules {
            inherit addrs ports;
            comment = "barnabee-inference";
          };
      in {
        assertions =
          models.assertions "inference" cfg.models
          ++ [
            {
              assertion = cfg.allowFrom == [] || (config.networking.nftables.enable or false);
              message = "services.barnabee.inference.allowFrom needs the nftables firewall (networking.nftables.enable = true; the Barnabee appliance profile sets it).";
            }
          ];
        services.barnabee.inference.settings =
          {
            models = lib.mkIf (cfg.models != {}) (models.render pkgs cfg.models);
            # The Wyoming server binds where the HTTP API does, on `wyomingPort` (the daemon's own
            # default is 127.0.0.1:10300, which the beelink could not reach).
            wyoming.listen = lib.mkDefault "${
              lib.concatStringsSep ":" (lib.init (lib.splitString ":" cfg.settings.service.listen))
            }:${toString cfg.wyomingPort}";
            runtime =
              {espeak_ng = lib.mkDefault (lib.getExe' cfg.espeakNg "espeak-ng");}
              # The daemon's default provider is "cpu" (crates/inference/src/config.rs): without
              # this the CUDA onnxruntime and the device rights below would go unused.
              // lib.optionalAttrs cfg.gpu.enable {provider = lib.mkDefault "cuda";};
          }
          // lib.optionalAttrs cfg.gpu.enable {
            # NVML is dlopen()ed by name; on NixOS the driver's libraries live only under
            # /run/opengl-driver/lib (hardware.graphics), which is not on the default search path.
            gpu.nvml_library = lib.mkDefault "/run/opengl-driver/lib/libnvidia-ml.so.1";
          };
        networking.firewall.allowedTCPPorts = lib.mkIf cfg.openFirewall ports;
        networking.firewall.extraInputRules = lib.mkIf (cfg.allowFrom != []) (allowRules cfg.allowFrom);
        systemd.services.barnabee-inference = {
          environment.ORT_DYLIB_PATH = "${cfg.onnxruntime}/lib/libonnxruntime.so";
          serviceConfig = lib.mkIf cfg.gpu.enable {
            PrivateDevices = false;
            DevicePolicy = "closed";
            DeviceAllow = [
              "char-nvidiactl rw"
              "char-nvidia-caps rw"
              "char-nvidia-frontend rw"
              "char-nvidia-uvm rw"
            ];
            ProcSubset = "all";
            MemoryDenyWriteExecute = false;
            # A user namespace hides the device nodes' owners; keep the real ids for the GPU.
            PrivateUsers = false;
            SupplementaryGroups = ["video" "render"];
          };
        };
      };
    })
  ];
}
