{
  description = "Barnabee: a local-first home voice assistant, shipped as a NixOS appliance";

  inputs = {
    # The 26.11 line: nixos-unstable now, nixos-26.11 once branched (boot counting,
    # services.journald.settings; see docs/nixos.md).
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    crane.url = "github:ipetkov/crane";
    sops-nix = {
      url = "github:Mic92/sops-nix";
      inputs.nixpkgs.follows = "nixpkgs";
    };
  };

  outputs = {
    self,
    nixpkgs,
    crane,
    sops-nix,
  }: let
    system = "x86_64-linux";
    inherit (nixpkgs) lib;
    overlay = import ./nix/overlay.nix {
      inherit crane;
      root = ./.;
    };
    pkgs = import nixpkgs {
      inherit system;
      overlays = [overlay];
    };
    mkHost = name:
      lib.nixosSystem {
        specialArgs = {inherit self;};
        modules = [
          self.nixosModules.${name}
          sops-nix.nixosModules.sops
          ./hosts/${name}
          {
            nixpkgs.overlays = [overlay];
            nixpkgs.hostPlatform = system;
          }
        ];
      };
  in {
    overlays.default = overlay;

    packages.${system} =
      # The daemons and the CLI; not the test-only memory build B (checks use it from pkgs).
      lib.filterAttrs (n: _: lib.hasPrefix "barnabee" n && !(lib.hasInfix "test" n)) (overlay pkgs pkgs)
      // {
        default = pkgs.barnabee-all;
        image-beelink = self.nixosConfigurations.beelink.config.system.build.images.raw-efi;
        image-beast = self.nixosConfigurations.beast.config.system.build.images.raw-efi;
      };

    nixosModules = {
      default = ./nixos-modules/default.nix;
      appliance = ./nixos-modules/appliance.nix;
      beelink = ./nixos-modules/roles/beelink.nix;
      beast = ./nixos-modules/roles/beast.nix;
    };

    nixosConfigurations = {
      beelink = mkHost "beelink";
      beast = mkHost "beast";
    };

    checks.${system} = import ./checks {
      inherit self pkgs sops-nix;
      craneLib = crane.mkLib pkgs;
    };

    formatter.${system} = pkgs.barnabee-alejandra;

    devShells.${system}.default = (crane.mkLib pkgs).devShell {
      packages = [
        pkgs.cargo-nextest
        pkgs.barnabee-alejandra
        pkgs.deadnix
        pkgs.sops
        pkgs.age
        pkgs.pkg-config
        pkgs.alsa-lib
      ];
      ORT_DYLIB_PATH = "${pkgs.onnxruntime}/lib/libonnxruntime.so";
    };
  };
}
