# Module-logic tests of the appliance as operators compose it: the hosts (hosts/<host> with
# its role, as flake.nix's mkHost does) with the committed empty site.nix and with the CI test
# site values, nixosModules.appliance on its own, every daemon's drop-in and credentials, the
# switch-time health gate, the firewall, the images. Run by ./run.nix with ./tests.nix.
{lib}: let
  h = import ./harness.nix {inherit lib;};
  inherit (h) eval evalRole evalHost evalAppliance failed renderedOf serviceOf stubs;
  site = import ../site-test.nix;

  beelinkEmpty = evalHost "beelink" [];
  beastEmpty = evalHost "beast" [];
  beelink = evalHost "beelink" [site.beelink];
  beast = evalHost "beast" [site.beast];
  beelinkDaemons = ["memory" "agents" "voice" "watchdog"];

  # The failed assertions are exactly one per needle, each needle found in a message.
  saysExactly = cfg: needles: let
    msgs = failed cfg;
  in
    builtins.length msgs == builtins.length needles && lib.all (n: lib.any (lib.hasInfix n) msgs) needles;

  # The unfree predicate as nixpkgs calls it: with a package's meta.
  allowUnfree = cfg: name: license:
    cfg.nixpkgs.config.allowUnfreePredicate {
      inherit name;
      pname = name;
      meta.license = license;
    };
  unfree = shortName: {
    inherit shortName;
    free = false;
  };

  # barnabee-rollback's script and the image override, as NixOS would call them.
  rollbackScript = beelink.systemd.services.barnabee-rollback.script;
  imageArgs = {
    config = {
      virtualisation.diskSize = 8192;
      image = {
        baseName = "nixos-image";
        format = "raw";
      };
    };
    inherit lib;
    pkgs = stubs.pkgs;
    modulesPath = ./fake-nixos/modules;
  };

  appliance26_11 = evalAppliance [
    # The 26.11-only options the profile uses when the pinned nixpkgs declares them.
    {
      options.boot.loader.systemd-boot.bootCounting = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = {};
      };
      options.services.journald.settings = lib.mkOption {
        type = lib.types.attrsOf lib.types.anything;
        default = {};
      };
    }
  ];
in [
  {
    name = "hosts, committed empty site.nix: fail with exactly the assertions that say what to set (never a throw)";
    expr = {
      beelink = saysExactly beelinkEmpty [
        "barnabee.operatorKeys is empty"
        "barnabee.beelink.inferenceHost is not set"
        "barnabee.beelink.replication.enable is on but services.barnabee.memory.settings.replication is not set"
      ];
      # No models assertion: the default model set serves with no site values.
      beast = saysExactly beastEmpty [
        "barnabee.operatorKeys is empty"
        "barnabee.beast.clients is empty"
      ];
    };
    expected = {
      beelink = true;
      beast = true;
    };
  }
  {
    name = "beelink host with the test site values: no failed assertion, every daemon enabled";
    expr = {
      failed = failed beelink;
      enabled = lib.filter (r: beelink.services.barnabee.${r}.enable) ["memory" "agents" "voice" "inference" "watchdog"];
    };
    expected = {
      failed = [];
      enabled = beelinkDaemons;
    };
  }
  {
    name = "beast host with the test site values: no failed assertion, inference and watchdog enabled";
    expr = {
      failed = failed beast;
      enabled = lib.filter (r: beast.services.barnabee.${r}.enable) ["memory" "agents" "voice" "inference" "watchdog"];
    };
    expected = {
      failed = [];
      enabled = ["inference" "watchdog"];
    };
  }
  {
    name = "beelink host: each daemon's unit is its package's, with a drop-in pointing at its /etc/barnabee config";
    expr =
      map (r: let
        s = serviceOf beelink r;
        pkgName = "barnabee-${r}";
      in {
        inherit (s) overrideStrategy wantedBy;
        execStart = lib.last s.serviceConfig.ExecStart == "/nix/store/00000000000000000000000000000000-${pkgName}/bin/${pkgName} --config ${beelink.services.barnabee.${r}.configFile}";
        reset = lib.head s.serviceConfig.ExecStart;
        etc = beelink.environment.etc."barnabee/${r}.toml".source == beelink.services.barnabee.${r}.configFile;
        packaged = lib.elem pkgName (map (p: p.name) beelink.systemd.packages);
      })
      beelinkDaemons;
    expected = map (_: {
      overrideStrategy = "asDropin";
      wantedBy = ["multi-user.target"];
      execStart = true;
      reset = "";
      etc = true;
      packaged = true;
    }) ["memory" "agents" "voice" "watchdog"];
  }
  {
    name = "beelink host: credentials come from sops-nix's /run/secrets paths (LoadCredential=)";
    expr = {
      memory = (serviceOf beelink "memory").serviceConfig.LoadCredential;
      agents = (serviceOf beelink "agents").serviceConfig.LoadCredential;
      voice = (serviceOf beelink "voice").serviceConfig.LoadCredential;
    };
    expected = {
      memory = ["s3-secret-access-key:/run/secrets/s3/secret_access_key"];
      agents = [
        "home-assistant-token:/run/secrets/home_assistant/token"
        "openrouter-api-key:/run/secrets/openrouter/api_key"
        "s3-secret-access-key:/run/secrets/s3/secret_access_key"
      ];
      voice = [];
    };
  }
  {
    name = "credentials: each has a SetCredential= default of one newline (read as empty), so a host not provisioned yet starts degraded instead of failing";
    expr = {
      memory = (serviceOf beelink "memory").serviceConfig.SetCredential;
      agents = (serviceOf beelink "agents").serviceConfig.SetCredential;
    };
    expected = {
      memory = ["s3-secret-access-key:\\n"];
      agents = ["home-assistant-token:\\n" "openrouter-api-key:\\n" "s3-secret-access-key:\\n"];
    };
  }
  {
    name = "beelink host: the cost ledger and the incident log replicate beside memory's replica (same bucket, endpoint, key id and secret; memory's prefix plus -agents / -watchdog), without memory's [replication.verify]";
    expr = let
      r = role: (renderedOf beelink role).replication;
    in {
      agents = {inherit (r "agents") type bucket path endpoint region force_path_style access_key_id secret_access_key_file;};
      watchdog = {inherit (r "watchdog") path secret_access_key_file;};
      verify = (r "agents") ? verify || (r "watchdog") ? verify;
      watchdogCredential = (serviceOf beelink "watchdog").serviceConfig.LoadCredential;
      restart = beelink.sops.secrets."s3/secret_access_key".restartUnits;
      warnings = beelink.warnings;
    };
    expected = {
      agents = {
        type = "s3";
        bucket = "barnabee-ci";
        path = "beelink-agents";
        endpoint = "http://s3.invalid:3900";
        region = "garage";
        force_path_style = true;
        access_key_id = "GK000000000000000000000000";
        secret_access_key_file = "s3-secret-access-key";
      };
      watchdog = {
        path = "beelink-watchdog";
        secret_access_key_file = "s3-secret-access-key";
      };
      verify = false;
      watchdogCredential = ["s3-secret-access-key:/run/secrets/s3/secret_access_key"];
      restart = ["barnabee-memory.service" "barnabee-agents.service" "barnabee-watchdog.service"];
      warnings = [];
    };
  }
  {
    name = "beelink host: memory's replica given as a url is not rewritten: agents and the watchdog stay unreplicated, and a warning says what to set";
    expr = let
      c = evalHost "beelink" [
        site.beelink
        {services.barnabee.memory.settings.replication.url = "s3://barnabee-ci/beelink?endpoint=http://s3.invalid:3900";}
      ];
    in {
      agents = (renderedOf c "agents") ? replication;
      watchdog = (renderedOf c "watchdog") ? replication;
      warned = lib.any (lib.hasInfix "not replicated by default") c.warnings;
    };
    expected = {
      agents = false;
      watchdog = false;
      warned = true;
    };
  }
  {
    name = "beelink host: the S3 secret is named in [replication], never its value";
    expr = {
      key = (renderedOf beelink "memory").replication.secret_access_key_file;
      noValue = !(lib.hasInfix "/run/secrets" (builtins.toJSON (renderedOf beelink "memory")));
    };
    expected = {
      key = "s3-secret-access-key";
      noValue = true;
    };
  }
  {
    name = "hosts: sops-nix decrypts with the host's provisioned age key, no SSH or GPG host keys";
    expr = map (c: {
      inherit (c.sops.age) keyFile sshKeyPaths;
      gnupg = c.sops.gnupg.sshKeyPaths;
    }) [beelink beast];
    expected = let
      one = {
        keyFile = "/var/lib/sops-nix/key.txt";
        sshKeyPaths = [];
        gnupg = [];
      };
    in [one one];
  }
  {
    name = "hosts: SSH host keys are ed25519 only";
    expr = map (c: map (k: k.type) c.services.openssh.hostKeys) [beelink beast];
    expected = [["ed25519"] ["ed25519"]];
  }
  {
    name = "beelink host: voice reaches the beast at the site's inferenceHost, agents and memory locally";
    expr = let
      v = renderedOf beelink "voice";
    in {
      inherit (v.inference) wyoming;
      inherit (v.speaker) inference_url;
      agents = v.agents.url;
    };
    expected = {
      wyoming = "beast.invalid:10300";
      inference_url = "http://beast.invalid:7704";
      agents = "http://127.0.0.1:7702";
    };
  }
  {
    name = "beelink host: the watchdog supervises memory, agents, voice and the console on loopback";
    expr = map (u: u.name) (renderedOf beelink "watchdog").units;
    expected = ["barnabee-memory.service" "barnabee-agents.service" "barnabee-voice.service" "barnabee-console.service"];
  }
  {
    name = "hosts: the runbook's commands are on PATH (barnabee, barnabee-replicator, sqlite3; aplay/arecord on the beelink)";
    expr = map (c: map (p: p.name) c.environment.systemPackages) [beelink beast];
    expected = [
      ["barnabee" "barnabee-replicator" "sqlite" "alsa-utils"]
      ["barnabee" "barnabee-replicator" "sqlite"]
    ];
  }
  {
    name = "beast host: inference (and node_exporter, ./tests-monitoring.nix) listen on the LAN, reachable from the listed clients only (nftables), no port open to all";
    expr = {
      inherit (beast.services.barnabee.inference.settings.service) listen;
      open = beast.networking.firewall.allowedTCPPorts;
      rules = beast.networking.firewall.extraInputRules;
      nftables = beast.networking.nftables.enable;
    };
    expected = {
      listen = "0.0.0.0:7704";
      open = [];
      rules = ''
        ip saddr { 192.0.2.10, 192.0.2.11 } tcp dport { 7704, 10300 } accept comment "barnabee-inference"

        ip saddr { 192.0.2.10, 192.0.2.11 } tcp dport 9100 accept comment "barnabee-node-exporter"
      '';
      nftables = true;
    };
  }
  {
    name = "beelink host: the operator console listens on the LAN, lets in only the private ranges (nftables), shows this host's daemons on loopback and the beast's inference, and Alertmanager's alerts";
    expr = let
      c = renderedOf beelink "console";
    in {
      inherit (c.service) listen;
      inherit (c) auth;
      daemons = map (d: "${d.role} ${d.host} ${d.url}") c.daemon;
      alertmanager = c.pages.alertmanager_url or null;
      rule = lib.any (lib.hasInfix "tcp dport 7706 accept comment \"barnabee-console\"") (lib.splitString "\n" beelink.networking.firewall.extraInputRules);
      open = beelink.networking.firewall.allowedTCPPorts;
      supervised = lib.elem "barnabee-console.service" (map (u: u.name) (renderedOf beelink "watchdog").units);
    };
    expected = {
      listen = "0.0.0.0:7706";
      auth = {
        password_hash_file = "/var/lib/barnabee-console/password-hash";
        generate_if_missing = true;
      };
      daemons = [
        "memory ${beelink.networking.hostName} http://127.0.0.1:7701"
        "agents ${beelink.networking.hostName} http://127.0.0.1:7702"
        "voice ${beelink.networking.hostName} http://127.0.0.1:7703"
        "watchdog ${beelink.networking.hostName} http://127.0.0.1:7705"
        "inference beast http://beast.invalid:7704"
      ];
      alertmanager = "http://127.0.0.1:9093";
      rule = true;
      open = [];
      supervised = true;
    };
  }
  {
    name = "console: a password hash file is a credential (no generated password); allowFrom needs nftables; [] opens nothing";
    expr = let
      withHash = eval [
        {
          networking.nftables.enable = true;
          services.barnabee.console = {
            enable = true;
            passwordHashFile = "/run/secrets/console-password-hash";
            address = "::";
            allowFrom = ["192.168.1.0/24" "fd00::/8"];
          };
        }
      ];
      noNft = eval [{services.barnabee.console.enable = true;}];
      closed = eval [
        {
          services.barnabee.console = {
            enable = true;
            allowFrom = [];
          };
        }
      ];
    in {
      auth = (renderedOf withHash "console").auth;
      listen = (renderedOf withHash "console").service.listen;
      credential = (serviceOf withHash "console").serviceConfig.LoadCredential;
      rules = withHash.networking.firewall.extraInputRules;
      noNft = lib.any (lib.hasInfix "console.allowFrom needs the nftables firewall") (failed noNft);
      closed = {
        failed = failed closed;
        rules = closed.networking.firewall.extraInputRules;
      };
    };
    expected = {
      auth = {
        password_hash_file = "password-hash";
        generate_if_missing = false;
      };
      listen = "[::]:7706";
      credential = ["password-hash:/run/secrets/console-password-hash"];
      rules = ''
        ip saddr { 192.168.1.0/24 } tcp dport 7706 accept comment "barnabee-console"
        ip6 saddr { fd00::/8 } tcp dport 7706 accept comment "barnabee-console"
      '';
      noNft = true;
      closed = {
        failed = [];
        rules = "";
      };
    };
  }
  {
    name = "agents: the Wyoming conversation service is off by default; on, it listens where asked and lets in only allowFrom";
    expr = let
      off = eval [{services.barnabee.agents.enable = true;}];
      on = eval [
        {
          networking.nftables.enable = true;
          services.barnabee.agents = {
            enable = true;
            wyoming = {
              enable = true;
              address = "::";
              allowFrom = ["192.168.1.30" "fd00::30"];
            };
          };
        }
      ];
      noNft = eval [
        {
          services.barnabee.agents = {
            enable = true;
            wyoming = {
              enable = true;
              allowFrom = ["192.168.1.30"];
            };
          };
        }
      ];
    in {
      off = off.services.barnabee.agents.settings ? wyoming;
      listen = on.services.barnabee.agents.settings.wyoming.listen;
      rules = on.networking.firewall.extraInputRules;
      noNft = lib.any (lib.hasInfix "agents.wyoming.allowFrom needs the nftables firewall") (failed noNft);
    };
    expected = {
      off = false;
      listen = "[::]:10800";
      rules = ''
        ip saddr { 192.168.1.30 } tcp dport 10800 accept comment "barnabee-agents-wyoming"
        ip6 saddr { fd00::30 } tcp dport 10800 accept comment "barnabee-agents-wyoming"
      '';
      noNft = true;
    };
  }
  {
    name = "inference: allowFrom puts IPv4 and IPv6 clients in their own rules";
    expr =
      (eval [
        {
          networking.nftables.enable = true;
          services.barnabee.inference = {
            enable = true;
            settings.service.listen = "[::]:7704";
            allowFrom = ["192.168.1.20" "fd00::20" "10.0.0.0/24"];
          };
        }
      ])
      .networking
      .firewall
      .extraInputRules;
    expected = ''
      ip saddr { 192.168.1.20, 10.0.0.0/24 } tcp dport { 7704, 10300 } accept comment "barnabee-inference"
      ip6 saddr { fd00::20 } tcp dport { 7704, 10300 } accept comment "barnabee-inference"
    '';
  }
  {
    name = "inference: allowFrom without the nftables firewall fails with what to set";
    expr =
      lib.any (lib.hasInfix "allowFrom needs the nftables firewall")
      (failed (eval [
        {
          services.barnabee.inference = {
            enable = true;
            allowFrom = ["192.168.1.20"];
          };
        }
      ]));
    expected = true;
  }
  {
    name = "inference: openFirewall alone opens both ports to everyone (the generic module's switch)";
    expr =
      (eval [
        {
          services.barnabee.inference = {
            enable = true;
            openFirewall = true;
          };
        }
      ])
      .networking
      .firewall
      .allowedTCPPorts;
    expected = [7704 10300];
  }
  {
    name = "beast role, GPU on: the driver and CUDA-licensed packages are allowed, other unfree software is not";
    expr = let
      c = evalRole "beast" [];
    in {
      driver = allowUnfree c "nvidia-x11" (unfree "unfreeRedistributable");
      cudnn = allowUnfree c "cudnn" (unfree "cuDNN EULA");
      cublas = allowUnfree c "libcublas" (unfree "CUDA EULA");
      someNewCudaRedist = allowUnfree c "cuda_new_thing" [(unfree "CUDA EULA") lib.licenses.mit];
      other = allowUnfree c "steam" (unfree "unfree");
      libnvPrefixOnly = allowUnfree c "libnvsomething" (unfree "unfree");
    };
    expected = {
      driver = true;
      cudnn = true;
      cublas = true;
      someNewCudaRedist = true;
      other = false;
      libnvPrefixOnly = false;
    };
  }
  {
    name = "health gate: every switch that changes a supervised daemon's package or config re-runs it (restartTriggers)";
    expr = let
      gate = beelink.systemd.services.barnabee-health-gate;
    in {
      triggers = gate.restartTriggers;
      inherit (gate) requiredBy wantedBy after;
    };
    expected = {
      triggers = lib.concatMap (r: [beelink.services.barnabee.${r}.package beelink.services.barnabee.${r}.configFile]) ["memory" "agents" "voice" "console"];
      requiredBy = ["boot-complete.target"];
      wantedBy = ["multi-user.target"];
      after = ["barnabee-memory.service" "barnabee-agents.service" "barnabee-voice.service" "barnabee-console.service"];
    };
  }
  {
    name = "health gate: a daemon's config change changes the gate's triggers (so the switch restarts the gate)";
    expr = let
      changed = evalHost "beelink" [site.beelink {services.barnabee.memory.settings.database.path = "/var/lib/barnabee-memory/other.db";}];
    in
      changed.systemd.services.barnabee-health-gate.restartTriggers != beelink.systemd.services.barnabee-health-gate.restartTriggers;
    expected = true;
  }
  {
    name = "rollback: waits for the switch that ran the gate to release switch-to-configuration's lock, and never chains rollbacks";
    expr = {
      waitsForLock = lib.hasInfix "flock --wait 900 /run/nixos/switch-to-configuration.lock true" rollbackScript;
      lockBeforeRollback = lib.hasInfix "flock --wait" (lib.head (lib.splitString "nix-env --profile" rollbackScript));
      refusesSecond = lib.hasInfix "not rolling back further" rollbackScript;
      utilLinux = lib.elem "util-linux" (map (p: p.name) beelink.systemd.services.barnabee-rollback.path);
      survivesSwitch = beelink.systemd.services.barnabee-rollback.restartIfChanged;
    };
    expected = {
      waitsForLock = true;
      lockBeforeRollback = true;
      refusesSecond = true;
      utilLinux = true;
      survivesSwitch = false;
    };
  }
  {
    name = "appliance: the images get a 1 GiB ESP from make-disk-image (10 generations fit), EFI partition table";
    expr = map (img: let
      built = (beelink.image.modules.${img} imageArgs).system.build.image;
      v = built.content or built;
    in {
      inherit (v) bootSize partitionTableType format diskSize;
    }) ["raw-efi" "qemu-efi"];
    expected = let
      one = {
        bootSize = "1G";
        partitionTableType = "efi";
        format = "raw";
        diskSize = 8192;
      };
    in [one one];
  }
  {
    name = "appliance: systemd-boot keeps 10 generations, never writes NVRAM, no editor";
    expr = {
      inherit (beelink.boot.loader.systemd-boot) enable configurationLimit editor;
      inherit (beelink.boot.loader.efi) canTouchEfiVariables;
    };
    expected = {
      enable = true;
      configurationLimit = 10;
      editor = false;
      canTouchEfiVariables = false;
    };
  }
  {
    name = "appliance on the 26.11 line: boot counting (tries from barnabee.bootCounting) and journald settings";
    expr = {
      counting = appliance26_11.boot.loader.systemd-boot.bootCounting;
      journal = appliance26_11.services.journald.settings.Journal.Storage;
      noLegacy = !(appliance26_11.services.journald ? extraConfig);
    };
    expected = {
      counting = {
        enable = true;
        tries = 3;
      };
      journal = "persistent";
      noLegacy = true;
    };
  }
  {
    name = "appliance before 26.11: journald falls back to storage/extraConfig, no boot counting option set";
    expr = {
      storage = beelink.services.journald.storage;
      counting = beelink.boot.loader.systemd-boot ? bootCounting;
    };
    expected = {
      storage = "persistent";
      counting = false;
    };
  }
  {
    name = "appliance: SSH keys only, root by key, the operators' keys authorised";
    expr = {
      inherit (beelink.services.openssh.settings) PasswordAuthentication PermitRootLogin;
      keys = beelink.users.users.root.openssh.authorizedKeys.keys;
    };
    expected = {
      PasswordAuthentication = false;
      PermitRootLogin = "prohibit-password";
      keys = (lib.head site.beelink.imports).barnabee.operatorKeys;
    };
  }
  {
    name = "memory: secretAccessKeyFile without a replica is no throw: no [replication] rendered, the credential still passed";
    expr = let
      c = eval [
        {
          services.barnabee.memory = {
            enable = true;
            replication.secretAccessKeyFile = "/run/secrets/s3";
          };
        }
      ];
    in {
      replication = (renderedOf c "memory") ? replication;
      load = (serviceOf c "memory").serviceConfig.LoadCredential;
      failed = failed c;
    };
    expected = {
      replication = false;
      load = ["s3-secret-access-key:/run/secrets/s3"];
      failed = [];
    };
  }
  {
    name = "memory: an explicit secret_access_key_file wins over the credential's default name";
    expr =
      (renderedOf (eval [
        {
          services.barnabee.memory = {
            enable = true;
            replication.secretAccessKeyFile = "/run/secrets/s3";
            settings.replication = {
              type = "s3";
              bucket = "b";
              access_key_id = "GK1";
              secret_access_key_file = "/etc/barnabee/s3-secret";
            };
          };
        }
      ]) "memory")
      .replication
      .secret_access_key_file;
    expected = "/etc/barnabee/s3-secret";
  }
  {
    name = "agents: the OpenRouter key and Home Assistant token become credentials; without them none";
    expr = let
      with' = eval [
        {
          services.barnabee.agents = {
            enable = true;
            openrouterApiKeyFile = "/run/secrets/or";
            homeAssistantTokenFile = "/run/secrets/ha";
          };
        }
      ];
      without = eval [{services.barnabee.agents.enable = true;}];
    in {
      with' = (serviceOf with' "agents").serviceConfig.LoadCredential;
      without = (serviceOf without "agents").serviceConfig.LoadCredential;
      wantsMemory = (serviceOf without "agents").wants;
    };
    expected = {
      with' = ["home-assistant-token:/run/secrets/ha" "openrouter-api-key:/run/secrets/or"];
      without = [];
      wantsMemory = ["barnabee-memory.service"];
    };
  }
  {
    name = "each daemon: [service] renders listen, drain_timeout and log for agents, voice, inference, watchdog";
    expr =
      map (r: (renderedOf (eval [{services.barnabee.${r}.enable = true;}]) r).service) ["agents" "voice" "inference" "watchdog"];
    expected = map (port: {
      listen = "127.0.0.1:${toString port}";
      drain_timeout = 8;
      log = {
        level = "info";
        target = "auto";
      };
    }) [7702 7703 7704 7705];
  }
  {
    name = "each daemon: build-time --check-config runs the daemon's own binary on its rendering";
    expr = map (r: let
      c = eval [
        {
          services.barnabee.${r} = {
            enable = true;
            checkConfig = true;
          };
        }
      ];
    in
      lib.hasInfix "/bin/barnabee-${r} --config /nix/store/" c.services.barnabee.${r}.configFile.script
      && lib.hasInfix "--check-config" c.services.barnabee.${r}.configFile.script) ["memory" "agents" "voice" "inference" "watchdog"];
    expected = [true true true true true];
  }
  {
    name = "voice: the ONNX Runtime library reaches the unit (ORT_DYLIB_PATH)";
    expr = (serviceOf (eval [{services.barnabee.voice.enable = true;}]) "voice").environment.ORT_DYLIB_PATH;
    expected = "/nix/store/00000000000000000000000000000000-onnxruntime/lib/libonnxruntime.so";
  }
  {
    name = "beast host: the watchdog probes inference on loopback although it listens on 0.0.0.0";
    expr = (renderedOf beast "watchdog").units;
    expected = [
      {
        name = "barnabee-inference.service";
        health_url = "http://127.0.0.1:7704/health";
      }
    ];
  }
  {
    name = "beast host with the test site: the model renders with its store path and hash";
    expr = let
      m = (renderedOf beast "inference").models.ci-placeholder;
    in {
      inherit (m) kind sha256;
      inStore = lib.hasPrefix "/nix/store/" m.path;
    };
    expected = {
      kind = "vad";
      sha256 = builtins.hashString "sha256" "not a model: CI evaluation only";
      inStore = true;
    };
  }
]
