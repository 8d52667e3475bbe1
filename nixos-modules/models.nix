# Models pinned by hash, shared by voice and inference: each entry is fetched with fetchurl
# (so the image is reproducible) and rendered into the daemon's `[models.<name>]` table with
# its store path and the same SHA-256 the daemon re-checks at load.
# There is no default hash: an entry without `sha256` fails evaluation with an assertion
# saying what to set (compute it with `nix-prefetch-url <url>` or `sha256sum`).
{lib}: let
  inherit (lib) mkOption types;
in {
  option = role:
    mkOption {
      default = {};
      description = "Models for barnabee-${role}, fetched by URL and pinned by SHA-256.";
      type = types.attrsOf (types.submodule {
        options = {
          kind = mkOption {
            type = types.str;
            example = "stt";
            description = "Model kind as the daemon's model registry names it.";
          };
          url = mkOption {
            type = types.str;
            description = "Where to fetch the ONNX file (pinned: never a moving 'latest' URL).";
          };
          sha256 = mkOption {
            type = types.nullOr (types.strMatching "[0-9a-f]{64}");
            default = null;
            description = "Hex SHA-256 of the file; checked by Nix at fetch and by the daemon at load.";
          };
          file = mkOption {
            type = types.nullOr types.path;
            default = null;
            description = "A local file instead of `url` (tests); its hash is still checked by the daemon.";
          };
        };
      });
    };

  assertions = role: models:
    lib.mapAttrsToList (name: m: {
      assertion = m.file != null || m.sha256 != null;
      message = "services.barnabee.${role}.models.${name}.sha256 is not set: set it to the hex SHA-256 of ${m.url} (nix-prefetch-url --type sha256 ${m.url} | nix hash convert --to base16, or sha256sum of the file).";
    })
    models;

  render = pkgs: models:
    lib.mapAttrs (name: m: {
      inherit (m) kind;
      path =
        if m.file != null
        then "${m.file}"
        else "${pkgs.fetchurl {
          inherit (m) url sha256;
          name = "barnabee-model-${name}.onnx";
        }}";
      sha256 = m.sha256;
    }) (lib.filterAttrs (_: m: m.file != null || m.sha256 != null) models);
}
