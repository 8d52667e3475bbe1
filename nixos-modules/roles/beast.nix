# The beast role (nixosModules.beast): the GPU server. Inference (ONNX Runtime, CUDA), NVML,
# watchdog. `barnabee.beast.gpu.enable = false` runs it on CPU (VM tests, a GPU-less spare).
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.barnabee.beast;
in {
  imports = [../default.nix ../appliance.nix];

  options.barnabee.beast = {
    gpu.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "NVIDIA driver, CUDA onnxruntime and the GPU devices for barnabee-inference. Off: CPU only (NVML absent, degraded /health).";
    };
    requireModels = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "Assert that services.barnabee.inference.models is not empty (off only for tests).";
    };
  };

  config = lib.mkMerge [
    {
      assertions = [
        {
          assertion = !cfg.requireModels || config.services.barnabee.inference.models != {};
          message = "services.barnabee.inference.models is empty: declare the STT, TTS, wake-word, VAD and embedding models with url + sha256 (see docs/nixos.md), or set barnabee.beast.requireModels = false.";
        }
      ];
      services.barnabee = {
        inference = {
          enable = true;
          openFirewall = true;
          # The beelink reaches it over the LAN.
          settings.service.listen = lib.mkDefault "0.0.0.0:7704";
        };
        watchdog.enable = true;
      };
    }
    (lib.mkIf cfg.gpu.enable {
      # services.xserver.videoDrivers is how nixos/modules/hardware/video/nvidia.nix is switched
      # on; it does not start X.
      services.xserver.videoDrivers = ["nvidia"];
      hardware.graphics.enable = true; # /run/opengl-driver/lib: libcuda, libnvidia-ml
      hardware.nvidia = {
        open = true; # must be set explicitly for drivers >= 560 (Turing and newer)
        modesetting.enable = true;
        nvidiaPersistenced = true;
        nvidiaSettings = false;
        package = config.boot.kernelPackages.nvidiaPackages.stable;
      };
      nixpkgs.config.allowUnfreePredicate = pkg:
        builtins.elem (lib.getName pkg) [
          "nvidia-x11"
          "nvidia-settings"
          "nvidia-persistenced"
        ]
        || lib.hasPrefix "cuda" (lib.getName pkg)
        # onnxruntime's CUDA build links cuDNN (pkgs/by-name/on/onnxruntime/package.nix:
        # buildInputs cudaPackages.cudnn), whose name does not start with "cuda".
        || lib.hasPrefix "cudnn" (lib.getName pkg)
        || lib.hasPrefix "libcu" (lib.getName pkg)
        || lib.hasPrefix "libnv" (lib.getName pkg)
        || lib.hasPrefix "libnpp" (lib.getName pkg);
      services.barnabee.inference = {
        gpu.enable = true;
        onnxruntime = pkgs.onnxruntime.override {
          cudaSupport = true;
          pythonSupport = false;
        };
      };
    })
  ];
}
