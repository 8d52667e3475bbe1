# Module-logic tests: each case evaluates our modules (with ./stubs.nix) and compares what the
# module produced with what it should. Run by ./run.nix (offline and as the flake check
# `eval-modules`). A case is { name; expr; expected; }, like lib.runTests. This file: the daemon
# modules; ./tests-appliance.nix: the appliance profile, the roles and the hosts.
{lib}: let
  inherit (import ./harness.nix {inherit lib;}) eval evalRole failed rejects renderedOf;

  memory = eval [{services.barnabee.memory.enable = true;}];
  memoryS3 = extra:
    eval [
      {
        services.barnabee.memory = {
          enable = true;
          settings.replication = {
            type = "s3";
            bucket = "barnabee";
            path = "beelink";
            endpoint = "http://s3:3900";
            region = "garage";
            force_path_style = true;
            access_key_id = "GKtest";
          };
        };
      }
      extra
    ];
  withKey = memoryS3 {services.barnabee.memory.replication.secretAccessKeyFile = "/run/secrets/s3";};
  watchdog = eval [
    {
      services.barnabee.memory.enable = true;
      services.barnabee.inference = {
        enable = true;
        settings.service.listen = "0.0.0.0:7704";
      };
      services.barnabee.watchdog.enable = true;
    }
  ];
  gpu = eval [
    {
      services.barnabee.inference = {
        enable = true;
        gpu.enable = true;
      };
    }
  ];
  cpu = eval [{services.barnabee.inference.enable = true;}];
  memoryFile = path:
    eval [
      {
        services.barnabee.memory = {
          enable = true;
          settings.replication = {
            type = "file";
            inherit path;
            restore_if_missing = false;
            shutdown_timeout = 5;
            fail_after_errors = 3;
          };
        };
      }
    ];
  zeros = lib.fixedWidthString 64 "0" "";
  ones = lib.fixedWidthString 64 "1" "";
  withModels = eval [
    {
      services.barnabee.inference = {
        enable = true;
        models = {
          silero = {
            kind = "vad";
            url = "https://example.invalid/silero_vad.onnx";
            sha256 = zeros;
            threshold = 0.5;
          };
          wake = {
            kind = "wake";
            refractory = 2.0;
            files = {
              melspectrogram = {
                url = "https://example.invalid/melspectrogram.onnx";
                sha256 = zeros;
              };
              embedding = {
                url = "https://example.invalid/embedding_model.onnx";
                sha256 = ones;
              };
            };
          };
        };
      };
    }
  ];
in [
  {
    name = "memory: [service] defaults (port 7701, log target auto)";
    expr = (renderedOf memory "memory").service;
    expected = {
      listen = "127.0.0.1:7701";
      drain_timeout = 8;
      log = {
        level = "info";
        target = "auto";
      };
    };
  }
  {
    name = "memory: no replication section when unset (TOML has no null)";
    expr = (renderedOf memory "memory") ? replication;
    expected = false;
  }
  {
    name = "memory: drop-in resets ExecStart and points at the store config";
    expr = memory.systemd.services.barnabee-memory.serviceConfig.ExecStart;
    expected = ["" "/nix/store/00000000000000000000000000000000-barnabee-memory/bin/barnabee-memory --config ${memory.services.barnabee.memory.configFile}"];
  }
  {
    name = "memory: unit comes from the package, module adds a drop-in";
    expr = {
      inherit (memory.systemd.services.barnabee-memory) overrideStrategy wantedBy;
      packages = map (p: p.name) memory.systemd.packages;
    };
    expected = {
      overrideStrategy = "asDropin";
      wantedBy = ["multi-user.target"];
      packages = ["barnabee-memory"];
    };
  }
  {
    name = "memory: the daemon validates its generated config at build time";
    expr = let
      c = eval [
        {
          services.barnabee.memory = {
            enable = true;
            checkConfig = true;
          };
        }
      ];
    in
      lib.hasInfix "/bin/barnabee-memory --config" c.services.barnabee.memory.configFile.script
      && lib.hasInfix "--check-config" c.services.barnabee.memory.configFile.script;
    expected = true;
  }
  {
    name = "memory: config also at /etc/barnabee/memory.toml";
    expr = memory.environment.etc."barnabee/memory.toml".source == memory.services.barnabee.memory.configFile;
    expected = true;
  }
  {
    name = "memory: pre-switch check runs check-compat on the database";
    expr = lib.hasInfix "barnabee-memory check-compat --db" memory.system.preSwitchChecks.barnabee-memory-schema;
    expected = true;
  }
  {
    name = "memory: S3 replica without a secret key fails with what to set";
    expr = lib.any (m: lib.hasInfix "replication.secretAccessKeyFile is not set" m) (failed (memoryS3 {}));
    expected = true;
  }
  {
    name = "memory: secret key file becomes a credential named in the config";
    expr = {
      load = withKey.systemd.services.barnabee-memory.serviceConfig.LoadCredential;
      key = (renderedOf withKey "memory").replication.secret_access_key_file;
      failed = failed withKey;
    };
    expected = {
      load = ["s3-secret-access-key:/run/secrets/s3"];
      key = "s3-secret-access-key";
      failed = [];
    };
  }
  {
    name = "credentials: a store path is refused (secrets never in the store)";
    expr =
      rejects
      (eval [
        {
          services.barnabee.memory.enable = true;
          services.barnabee.memory.credentials.x = "/nix/store/aaaa-secret";
        }
      ])
      .services
      .barnabee
      .memory
      .credentials;
    expected = true;
  }
  {
    name = "settings: listen must be host:port";
    expr =
      rejects
      (eval [
        {
          services.barnabee.memory.enable = true;
          services.barnabee.memory.settings.service.listen = 5;
        }
      ])
      .services
      .barnabee
      .memory
      .settings
      .service
      .listen;
    expected = true;
  }
  {
    name = "settings: log target is auto|journald|stderr";
    expr =
      rejects
      (eval [
        {
          services.barnabee.agents.enable = true;
          services.barnabee.agents.settings.service.log.target = "syslog";
        }
      ])
      .services
      .barnabee
      .agents
      .settings
      .service
      .log
      .target;
    expected = true;
  }
  {
    name = "ports: agents 7702, voice 7703, inference 7704, watchdog 7705";
    expr = map (r: (eval [{services.barnabee.${r}.enable = true;}]).services.barnabee.${r}.settings.service.listen) ["agents" "voice" "inference" "watchdog"];
    expected = ["127.0.0.1:7702" "127.0.0.1:7703" "127.0.0.1:7704" "127.0.0.1:7705"];
  }
  {
    name = "watchdog: supervises the enabled daemons, probing on loopback";
    expr = (renderedOf watchdog "watchdog").units;
    expected = [
      {
        name = "barnabee-memory.service";
        health_url = "http://127.0.0.1:7701/health";
      }
      {
        name = "barnabee-inference.service";
        health_url = "http://127.0.0.1:7704/health";
      }
    ];
  }
  {
    name = "watchdog: rollback through the fixed root unit, no transient runner";
    expr = (renderedOf watchdog "watchdog").rollback;
    expected = {
      runner = [];
      command = ["/run/current-system/sw/bin/systemctl" "start" "--no-block" "barnabee-rollback.service"];
    };
  }
  {
    name = "watchdog: polkit grants manage-units on barnabee-*.service to barnabee-watchdog only";
    expr = let
      rule = watchdog.security.polkit.extraConfig;
    in
      lib.all (s: lib.hasInfix s rule) [
        "org.freedesktop.systemd1.manage-units"
        ''subject.user == "barnabee-watchdog"''
        "/^barnabee-[a-z0-9-]+\\.service$/"
      ]
      && !(lib.hasInfix ''"stop"'' rule);
    expected = true;
  }
  {
    name = "watchdog: health gate required by boot-complete.target";
    expr = {
      inherit (watchdog.systemd.services.barnabee-health-gate) requiredBy;
      gate = lib.hasSuffix "gate --timeout 5m" (lib.last watchdog.systemd.services.barnabee-health-gate.serviceConfig.ExecStart);
      rollbackSurvivesSwitch = watchdog.systemd.services.barnabee-rollback.restartIfChanged;
    };
    expected = {
      requiredBy = ["boot-complete.target"];
      gate = true;
      rollbackSurvivesSwitch = false;
    };
  }
  {
    name = "watchdog: gate.timeout takes the daemons' one duration grammar; anything else fails the evaluation";
    expr = let
      gateOf = t: let
        c = eval [
          {
            services.barnabee.watchdog = {
              enable = true;
              gate.timeout = t;
            };
          }
        ];
      in
        lib.last c.systemd.services.barnabee-health-gate.serviceConfig.ExecStart;
    in {
      accepted = map (t: lib.hasSuffix "--timeout ${t}" (gateOf t)) ["300" "45s" "2m30s" "1.5h"];
      rejected = map (t: rejects (gateOf t)) ["5 minutes" "5min" "" "-5s" "5m; rm -rf /"];
    };
    expected = {
      accepted = [true true true true];
      rejected = [true true true true true];
    };
  }
  {
    name = "inference: GPU opens exactly the NVIDIA devices";
    expr = {
      inherit (gpu.systemd.services.barnabee-inference.serviceConfig) DeviceAllow ProcSubset DevicePolicy PrivateDevices;
      ort = gpu.systemd.services.barnabee-inference.environment.ORT_DYLIB_PATH;
    };
    expected = {
      DeviceAllow = ["char-nvidiactl rw" "char-nvidia-caps rw" "char-nvidia-frontend rw" "char-nvidia-uvm rw"];
      ProcSubset = "all";
      DevicePolicy = "closed";
      PrivateDevices = false;
      ort = "/nix/store/00000000000000000000000000000000-onnxruntime/lib/libonnxruntime.so";
    };
  }
  {
    name = "inference: the GPU switches the ONNX provider to CUDA and points NVML at the driver; CPU keeps the daemon's defaults";
    expr = let
      g = renderedOf gpu "inference";
      c = renderedOf cpu "inference";
    in {
      gpuProvider = g.runtime.provider;
      gpuNvml = g.gpu.nvml_library;
      cpuProvider = c.runtime ? provider;
      cpuGpu = c ? gpu;
    };
    expected = {
      gpuProvider = "cuda";
      gpuNvml = "/run/opengl-driver/lib/libnvidia-ml.so.1";
      cpuProvider = false;
      cpuGpu = false;
    };
  }
  {
    name = "inference: the Wyoming server listens on the HTTP listener's address (reachable from the beelink when that is 0.0.0.0)";
    expr = {
      loopback = (renderedOf cpu "inference").wyoming.listen;
      lan = (renderedOf watchdog "inference").wyoming.listen;
    };
    expected = {
      loopback = "127.0.0.1:10300";
      lan = "0.0.0.0:10300";
    };
  }
  {
    name = "inference: CPU adds no device rights";
    expr = cpu.systemd.services.barnabee-inference.serviceConfig ? DeviceAllow;
    expected = false;
  }
  {
    name = "models: an entry without sha256 fails with what to set";
    expr =
      lib.any (m: lib.hasInfix "models.stt.sha256 is not set" m)
      (failed (eval [
        {
          services.barnabee.inference = {
            enable = true;
            models.stt = {
              kind = "stt";
              url = "https://example.invalid/stt.onnx";
            };
          };
        }
      ]));
    expected = true;
  }
  {
    name = "memory: a file replica is made writable (ReadWritePaths=, RequiresMountsFor=, StateDirectory= under /var/lib) and its new keys render";
    expr = let
      c = memoryFile "/var/lib/barnabee-replica";
      sc = c.systemd.services.barnabee-memory.serviceConfig;
    in {
      rw = sc.ReadWritePaths;
      state = sc.StateDirectory;
      mounts = c.systemd.services.barnabee-memory.unitConfig.RequiresMountsFor;
      keys = lib.attrNames (renderedOf c "memory").replication;
      failed = failed c;
    };
    expected = {
      rw = ["/var/lib/barnabee-replica"];
      state = ["barnabee-replica"];
      mounts = ["/var/lib/barnabee-replica"];
      keys = ["also" "fail_after_errors" "force_path_style" "path" "restore_if_missing" "shutdown_timeout" "sync_interval" "type" "verify"];
      failed = [];
    };
  }
  {
    name = "memory: two places: [[replication.also]] renders each replica (nulls dropped), makes every file replica writable, and checks each entry where it sits";
    expr = let
      two = also:
        eval [
          {
            services.barnabee.memory = {
              enable = true;
              replication.secretAccessKeyFile = "/run/secrets/s3";
              settings.replication = {
                type = "s3";
                bucket = "barnabee";
                path = "memory";
                access_key_id = "GKtest";
                inherit also;
              };
            };
          }
        ];
      c = two [
        {
          type = "file";
          path = "/var/lib/barnabee-nas";
        }
        {
          type = "file";
          path = "/mnt/usb/memory";
        }
      ];
      sc = c.systemd.services.barnabee-memory.serviceConfig;
    in {
      also = (renderedOf c "memory").replication.also;
      rw = sc.ReadWritePaths;
      state = sc.StateDirectory;
      mounts = c.systemd.services.barnabee-memory.unitConfig.RequiresMountsFor;
      failed = failed c;
      relative = lib.any (lib.hasInfix "services.barnabee.memory.settings.replication.also.0.path must be an absolute directory") (failed (two [
        {
          type = "file";
          path = "nas";
        }
      ]));
      s3NoKey = lib.any (lib.hasInfix "services.barnabee.memory.settings.replication.also.0.access_key_id is not set") (failed (two [
        {
          type = "s3";
          bucket = "offsite";
        }
      ]));
    };
    expected = {
      also = [
        {
          type = "file";
          path = "/var/lib/barnabee-nas";
          force_path_style = false;
          secret_access_key_file = "s3-secret-access-key";
        }
        {
          type = "file";
          path = "/mnt/usb/memory";
          force_path_style = false;
          secret_access_key_file = "s3-secret-access-key";
        }
      ];
      rw = ["/var/lib/barnabee-nas" "/mnt/usb/memory"];
      state = ["barnabee-nas"];
      mounts = ["/var/lib/barnabee-nas" "/mnt/usb/memory"];
      failed = [];
      relative = true;
      s3NoKey = true;
    };
  }
  {
    name = "memory: retention and verification settable (snapshot_interval, snapshot_retention, [replication.verify]); failures notify the watchdog's notifier when it runs here";
    expr = let
      withRetention = extra:
        eval [
          {
            services.barnabee.memory = {
              enable = true;
              settings.replication = {
                type = "file";
                path = "/var/lib/barnabee-replica";
                snapshot_interval = 86400;
                snapshot_retention = 2592000;
                verify = {
                  interval = 43200;
                  max_age = 172800;
                };
              };
            };
          }
          extra
        ];
      plain = (renderedOf (withRetention {}) "memory").replication;
      notifying =
        (renderedOf (withRetention {
          services.barnabee.watchdog = {
            enable = true;
            notify.webhook = {
              enable = true;
              url = "http://ntfy.lan/family";
            };
          };
        }) "memory")
        .replication;
    in {
      inherit (plain) snapshot_interval snapshot_retention;
      verify = plain.verify;
      notify = notifying.verify.notify_url;
      defaults = (renderedOf (memoryFile "/var/lib/barnabee-replica") "memory").replication.verify;
    };
    expected = {
      snapshot_interval = 86400;
      snapshot_retention = 2592000;
      verify = {
        interval = 43200;
        max_age = 172800;
      };
      notify = "http://127.0.0.1:7705/v1/notify/alertmanager";
      defaults = {};
    };
  }
  {
    name = "agents and watchdog: [replication] like memory's (the same option: assertions naming their own option path, the secret as a credential, a file replica made writable), no [replication.verify]";
    expr = let
      s3 = role:
        eval [
          {
            services.barnabee.${role} = {
              enable = true;
              settings.replication = {
                type = "s3";
                bucket = "barnabee";
                path = "beelink-${role}";
                endpoint = "http://s3:3900";
                access_key_id = "GKtest";
              };
              replication.secretAccessKeyFile = "/run/secrets/s3";
            };
          }
        ];
      noSecret = role:
        failed (eval [
          {
            services.barnabee.${role} = {
              enable = true;
              settings.replication = {
                type = "s3";
                bucket = "b";
                access_key_id = "GKtest";
              };
            };
          }
        ]);
      file = role:
        eval [
          {
            services.barnabee.${role} = {
              enable = true;
              settings.replication = {
                type = "file";
                path = "/var/lib/barnabee-backup/${role}";
              };
            };
          }
        ];
    in
      lib.genAttrs ["agents" "watchdog"] (role: {
        key = (renderedOf (s3 role) role).replication.secret_access_key_file;
        credential = lib.elem "s3-secret-access-key:/run/secrets/s3" ((s3 role).systemd.services."barnabee-${role}".serviceConfig.LoadCredential);
        verify = (renderedOf (s3 role) role).replication ? verify;
        noSecret = lib.any (lib.hasInfix "services.barnabee.${role}.replication.secretAccessKeyFile is not set") (noSecret role);
        rw = (file role).systemd.services."barnabee-${role}".serviceConfig.ReadWritePaths;
        # The watchdog's packaged unit reaches localhost only: an S3 replica opens it.
        ip = (s3 role).systemd.services."barnabee-${role}".serviceConfig.IPAddressAllow or [];
        failed = failed (s3 role);
      });
    expected = lib.genAttrs ["agents" "watchdog"] (role: {
      key = "s3-secret-access-key";
      credential = true;
      verify = false;
      noSecret = true;
      rw = ["/var/lib/barnabee-backup/${role}"];
      ip =
        if role == "watchdog"
        then ["any"]
        else [];
      failed = [];
    });
  }
  {
    name = "memory: a file replica outside /var/lib gets ReadWritePaths= only; a relative path fails";
    expr = {
      state = (memoryFile "/mnt/backup/barnabee").systemd.services.barnabee-memory.serviceConfig ? StateDirectory;
      relative = lib.any (lib.hasInfix "must be an absolute directory") (failed (memoryFile "replica"));
    };
    expected = {
      state = false;
      relative = true;
    };
  }
  {
    name = "inference: one-file models render path/sha256, multi-file models files.<role>, extra keys pass through, espeak-ng set";
    expr = let
      r = renderedOf withModels "inference";
    in {
      silero = r.models.silero;
      wake = r.models.wake;
      espeak = r.runtime.espeak_ng;
    };
    expected = {
      silero = {
        kind = "vad";
        threshold = 0.5;
        path = "/nix/store/${builtins.substring 0 32 zeros}-barnabee-model-silero";
        sha256 = zeros;
      };
      wake = {
        kind = "wake";
        refractory = 2.0;
        files = {
          melspectrogram = {
            path = "/nix/store/${builtins.substring 0 32 zeros}-barnabee-model-wake-melspectrogram";
            sha256 = zeros;
          };
          embedding = {
            path = "/nix/store/${builtins.substring 0 32 ones}-barnabee-model-wake-embedding";
            sha256 = ones;
          };
        };
      };
      espeak = "/nix/store/00000000000000000000000000000000-espeak-ng/bin/espeak-ng";
    };
  }
  {
    name = "models: a multi-file entry without a file's sha256 names that file";
    expr =
      lib.any (lib.hasInfix "models.stt.files.encoder.sha256 is not set")
      (failed (eval [
        {
          services.barnabee.inference = {
            enable = true;
            models.stt = {
              kind = "stt";
              files.encoder.url = "https://example.invalid/encoder.onnx";
            };
          };
        }
      ]));
    expected = true;
  }
  {
    name = "models: a local file needs sha256 too (the daemon takes path only with sha256), and renders both";
    expr = let
      withHash = sha256:
        eval [
          {
            services.barnabee.inference = {
              enable = true;
              models.silero =
                {
                  kind = "vad";
                  file = builtins.toFile "silero.onnx" "test";
                }
                // lib.optionalAttrs (sha256 != null) {inherit sha256;};
            };
          }
        ];
      rendered = (renderedOf (withHash ones) "inference").models.silero;
    in {
      missing = lib.any (lib.hasInfix "models.silero.sha256 is not set") (failed (withHash null));
      keys = lib.attrNames rendered;
      inherit (rendered) sha256;
    };
    expected = {
      missing = true;
      keys = ["kind" "path" "sha256"];
      sha256 = ones;
    };
  }
  {
    name = "voice: local mode needs both wake and vad ([inference.local] requires both)";
    expr =
      lib.any (lib.hasInfix "local mode needs both `wake` and `vad`")
      (failed (eval [
        {
          services.barnabee.voice = {
            enable = true;
            models.vad = {
              kind = "vad";
              url = "https://example.invalid/silero_vad.onnx";
              sha256 = zeros;
            };
          };
        }
      ]));
    expected = true;
  }
  {
    name = "voice: wake/vad render into [inference.local] with the ONNX Runtime library; other names fail";
    expr = let
      ok = eval [
        {
          services.barnabee.voice = {
            enable = true;
            models.vad = {
              kind = "vad";
              url = "https://example.invalid/silero_vad.onnx";
              sha256 = zeros;
            };
            models.wake = {
              kind = "wake";
              files = {
                melspectrogram = {
                  url = "https://example.invalid/melspectrogram.onnx";
                  sha256 = zeros;
                };
                embedding = {
                  url = "https://example.invalid/embedding_model.onnx";
                  sha256 = zeros;
                };
                hey_barnabee = {
                  url = "https://example.invalid/hey_barnabee.onnx";
                  sha256 = ones;
                };
              };
            };
          };
        }
      ];
      bad = eval [
        {
          services.barnabee.voice = {
            enable = true;
            models.stt = {
              kind = "stt";
              url = "https://example.invalid/stt.onnx";
              sha256 = zeros;
            };
          };
        }
      ];
      local = (renderedOf ok "voice").inference.local;
    in {
      names = lib.attrNames local;
      library = local.runtime.library;
      okPasses = failed ok;
      bad = lib.any (lib.hasInfix "only `wake` and `vad` run locally") (failed bad);
    };
    expected = {
      names = ["runtime" "vad" "wake"];
      okPasses = [];
      library = "/nix/store/00000000000000000000000000000000-onnxruntime/lib/libonnxruntime.so";
      bad = true;
    };
  }
  {
    name = "beelink role: unset site values fail with what to set";
    expr = let
      msgs = failed (evalRole "beelink" []);
    in
      map (needle: lib.any (lib.hasInfix needle) msgs) [
        "barnabee.operatorKeys is empty"
        "barnabee.beelink.inferenceHost is not set"
        "services.barnabee.memory.settings.replication is not set"
      ];
    expected = [true true true];
  }
  {
    name = "beelink role: voice is wired to the beast (Wyoming, speaker embeddings) and to the local agents and memory; the agents ring timers through the local voice; memory embeds with the beast's MiniLM";
    expr = let
      c = evalRole "beelink" [{barnabee.beelink.inferenceHost = "beast.lan";}];
      v = renderedOf c "voice";
    in {
      inherit (v.inference) wyoming;
      agents = v.agents.url;
      inherit (v.speaker) inference_url memory_url;
      timers = (renderedOf c "agents").voice.url;
      embeddings = (renderedOf c "memory").embeddings;
    };
    expected = {
      wyoming = "beast.lan:10300";
      agents = "http://127.0.0.1:7702";
      inference_url = "http://beast.lan:7704";
      memory_url = "http://127.0.0.1:7701";
      timers = "http://127.0.0.1:7703";
      embeddings = {
        url = "http://beast.lan:7704/v1/embed/text";
        model = "all-minilm-l6-v2";
      };
    };
  }
  {
    name = "local LLM: the beast runs llama.cpp for its clients only, the beelink's agents use it as [llm.local_server]; no model fails with what to set";
    expr = let
      beast = evalRole "beast" [
        {
          barnabee.beast.clients = ["192.168.1.20"];
          barnabee.beast.localLlm = {
            enable = true;
            model = "/var/lib/models/small.gguf";
          };
        }
      ];
      noModel = evalRole "beast" [{barnabee.beast.localLlm.enable = true;}];
      beelink = evalRole "beelink" [
        {
          barnabee.beelink.inferenceHost = "beast.lan";
          barnabee.beelink.localLlm.enable = true;
        }
      ];
      off = evalRole "beelink" [{barnabee.beelink.inferenceHost = "beast.lan";}];
    in {
      llama = {inherit (beast.services.llama-cpp) enable model modelsDir host port extraFlags;};
      rule = lib.hasInfix "ip saddr { 192.168.1.20 } tcp dport 8080 accept comment \"barnabee-llama-cpp\"" beast.networking.firewall.extraInputRules;
      noModel = lib.any (lib.hasInfix "barnabee.beast.localLlm.model is not set") (failed noModel);
      agents = (renderedOf beelink "agents").llm.local_server.url;
      offByDefault = (renderedOf off "agents").llm or {} ? local_server;
    };
    expected = {
      llama = {
        enable = true;
        model = "/var/lib/models/small.gguf";
        modelsDir = null;
        host = "0.0.0.0";
        port = 8080;
        extraFlags = ["-c" "4096" "-ngl" "999"];
      };
      rule = true;
      noModel = true;
      agents = "http://beast.lan:8080/v1";
      offByDefault = false;
    };
  }
  {
    name = "beast role without GPU: inference on, no NVIDIA devices; the default models satisfy requireModels, without them models are required";
    expr = let
      c = evalRole "beast" [{barnabee.beast.gpu.enable = false;}];
      bare = evalRole "beast" [
        {
          barnabee.beast.gpu.enable = false;
          barnabee.beast.defaultModels.enable = false;
        }
      ];
      empty = cfg: lib.any (lib.hasInfix "services.barnabee.inference.models is empty") (failed cfg);
    in {
      inference = c.services.barnabee.inference.enable;
      devices = c.systemd.services.barnabee-inference.serviceConfig ? DeviceAllow;
      models = empty c;
      bare = empty bare;
    };
    expected = {
      inference = true;
      devices = false;
      models = false;
      bare = true;
    };
  }
  {
    name = "beast role: the default model set (PyPI wheels pinned by hash, converted by the project's converters) renders every kind with store paths and the pinned SHA-256; a site model of the same name replaces its default";
    expr = let
      dm = import ../../nixos-modules/default-models.nix {inherit lib;};
      c = evalRole "beast" [{barnabee.beast.gpu.enable = false;}];
      m = (renderedOf c "inference").models;
      site = evalRole "beast" [
        {
          barnabee.beast.gpu.enable = false;
          services.barnabee.inference.models."whisper-tiny.en" = {
            kind = "stt";
            family = "whisper";
            files = lib.genAttrs ["encoder" "decoder" "tokenizer" "generation_config"] (r: {
              url = "https://models.invalid/whisper-base/${r}";
              sha256 = lib.fixedWidthString 64 "a" "";
            });
          };
        }
      ];
      sm = (renderedOf site "inference").models."whisper-tiny.en";
    in {
      names = lib.attrNames m;
      kinds = lib.mapAttrs (_: v: v.kind) m;
      families = {
        stt = m."whisper-tiny.en".family;
        speaker = m.ge2e-resemblyzer.family;
      };
      # Every rendered hash is the pin, every path a store path of that model.
      pinned = lib.all (name:
        lib.all (role: let
          f = m.${name}.files.${role};
        in
          f.sha256
          == dm.pins.${name}.files.${role}.sha256
          && lib.hasPrefix "/nix/store/" f.path
          && lib.hasSuffix dm.pins.${name}.files.${role}.name f.path
          && lib.hasInfix "barnabee-model-${name}" f.path) (lib.attrNames dm.pins.${name}.files)) (lib.attrNames dm.pins);
      converted = lib.hasInfix "-src" m.silero.files.model.path && !(lib.hasInfix "-src" m."whisper-tiny.en".files.encoder.path);
      override = sm.files.encoder.sha256;
      others = lib.attrNames (renderedOf site "inference").models;
      modelFailures = lib.filter (lib.hasInfix "models") (failed c ++ failed site);
    };
    expected = {
      names = ["all-minilm-l6-v2" "en_US-joe-medium" "ge2e-resemblyzer" "silero" "wake" "whisper-tiny.en"];
      kinds = {
        all-minilm-l6-v2 = "text_embedding";
        en_US-joe-medium = "tts";
        ge2e-resemblyzer = "speaker";
        silero = "vad";
        wake = "wake";
        "whisper-tiny.en" = "stt";
      };
      families = {
        stt = "whisper";
        speaker = "ge2e";
      };
      pinned = true;
      converted = true;
      override = lib.fixedWidthString 64 "a" "";
      others = ["all-minilm-l6-v2" "en_US-joe-medium" "ge2e-resemblyzer" "silero" "wake" "whisper-tiny.en"];
      modelFailures = [];
    };
  }
]
