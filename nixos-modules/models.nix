# Models pinned by hash, shared by voice and inference: each file is fetched with fetchurl (so
# the image is reproducible) and rendered into the daemon's model table (barnabee-inference's
# `[models.<name>]`, barnabee-voice's `[inference.local.<wake|vad>]`) with its store path and
# the same SHA-256 the daemon re-checks at load.
#   one-file model (vad, speaker):      url + sha256            -> path = ..., sha256 = ...
#   multi-file model (wake, stt, tts, text_embedding): files.<role> = { url, sha256 }
#                                                               -> files.<role> = { path, sha256 }
# File roles per kind (crates/inference/inference.example.toml): wake: melspectrogram,
# embedding, + one per wake word named after it; stt: encoder, decoder_joint, vocab (Parakeet) or,
# with family = "whisper", encoder, decoder, tokenizer, generation_config; tts: model,
# config; text_embedding: model, vocab; vad/speaker: model (or the one-file form).
# Other keys of an entry (threshold, refractory, languages, espeak_voice, noise_scale,
# length_scale, noise_w, gpu, vram_mb, family, max_tokens) are passed through as they are.
# There is no default hash: a file without `sha256` fails evaluation with an assertion saying
# what to set (compute it with `nix-prefetch-url <url>` or `sha256sum`). That holds for a local
# `file` too: barnabee-inference's config (crates/inference/src/config.rs) takes `path` only
# together with `sha256`, so `--check-config` would refuse a hash-less entry at build time.
{lib}: let
  inherit (lib) mkOption types;

  fileOptions = {
    url = mkOption {
      type = types.nullOr types.str;
      default = null;
      description = "Where to fetch the file (pinned: never a moving 'latest' URL).";
    };
    sha256 = mkOption {
      type = types.nullOr (types.strMatching "[0-9a-f]{64}");
      default = null;
      description = "Hex SHA-256 of the file; checked by Nix at fetch and by the daemon at load.";
    };
    file = mkOption {
      type = types.nullOr types.path;
      default = null;
      description = "A local file instead of `url` (tests); `sha256` is still required (the daemon refuses `path` without it and checks the hash at load).";
    };
  };

  # name -> { what, url, sha256, file } for every file of every model, for the assertions.
  allFiles = role: models:
    lib.concatLists (lib.mapAttrsToList (name: m:
      lib.optional (m.url != null || m.file != null) {
        what = "services.barnabee.${role}.models.${name}";
        inherit (m) url sha256 file;
      }
      ++ lib.mapAttrsToList (r: f: {
        what = "services.barnabee.${role}.models.${name}.files.${r}";
        inherit (f) url sha256 file;
      })
      m.files)
    models);

  renderFile = pkgs: name: f: {
    path =
      if f.file != null
      then "${f.file}"
      else "${pkgs.fetchurl {
        inherit (f) url sha256;
        name = "barnabee-model-${name}";
      }}";
    inherit (f) sha256;
  };

  hasSource = f: (f.file != null || f.url != null) && f.sha256 != null;
in {
  option = role:
    mkOption {
      default = {};
      description = "Models for barnabee-${role}, fetched by URL and pinned by SHA-256.";
      type = types.attrsOf (types.submodule {
        freeformType = types.attrsOf types.anything;
        options =
          fileOptions
          // {
            kind = mkOption {
              type = types.enum ["vad" "wake" "stt" "tts" "speaker" "text_embedding"];
              example = "stt";
              description = "Model kind as the daemon's model registry names it.";
            };
            files = mkOption {
              default = {};
              description = "The files of a multi-file model, by role (see the kinds above).";
              type = types.attrsOf (types.submodule {options = fileOptions;});
            };
          };
      });
    };

  assertions = role: models:
    lib.mapAttrsToList (name: m: {
      assertion = (m.url != null || m.file != null) != (m.files != {});
      message = "services.barnabee.${role}.models.${name}: give either `url` + `sha256` (one-file model) or `files.<role> = { url; sha256; }` (multi-file: wake, stt, tts, text_embedding), not both and not neither.";
    })
    models
    ++ map (f: {
      assertion = f.sha256 != null;
      message = "${f.what}.sha256 is not set: set it to the hex SHA-256 of ${
        if f.file != null
        then toString f.file
        else toString f.url
      } (`sha256sum` of the file, or `nix hash convert --hash-algo sha256 --to base16 $(nix-prefetch-url <url>)`).";
    }) (allFiles role models);

  render = pkgs: models:
    lib.mapAttrs (name: m:
      removeAttrs m ["url" "sha256" "file" "files"]
      // (
        if m.files != {}
        then {files = lib.mapAttrs (r: renderFile pkgs "${name}-${r}") (lib.filterAttrs (_: hasSource) m.files);}
        else lib.optionalAttrs (hasSource m) (renderFile pkgs name m)
      ))
    models;
}
