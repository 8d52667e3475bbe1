#!/usr/bin/env bash
# Build the guest image into OUT (a fresh directory): a minimal Debian bookworm with real
# systemd 252, D-Bus, polkit and sshd, as a raw ext4 disk (mkfs.ext4 -d: no loop device,
# no mount) plus the kernel (uncompressed vmlinux for PVH direct boot) and a small initrd.
# Needs root (mmdebstrap's root mode and chroot). About 2 minutes, limited by the mirror.
# Everything the guest needs at build time is here; the harness copies the barnabee binaries,
# units and configs in over ssh at run time. Recipe hash = sha256 of this directory, so any
# edit here rebuilds the cached image.
set -euo pipefail
OUT=$1
HERE="$(cd "$(dirname "$0")" && pwd)"
R="$OUT/rootfs"
MIRROR=${BARNABEE_VM_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$OUT"
rm -rf "$R"
# ca-certificates: barnabee-watchdog's HTTP client panics at start without any CA certificate
# (reqwest's Client::new(); it only probes loopback), and a real host has them anyway.
# libasound2: barnabee-voice links ALSA's libasound.so.2 (cpal); the guest has no sound card.
PKGS=systemd,systemd-sysv,dbus,udev,kmod,iproute2,linux-image-amd64,openssh-server,curl,polkitd,sqlite3,ca-certificates,libasound2
mmdebstrap --quiet --variant=minbase --include="$PKGS" \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  bookworm "$R" "$MIRROR"

echo barnabee-vm > "$R/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 barnabee-vm\n' > "$R/etc/hosts"
echo '/dev/vda / ext4 rw,errors=remount-ro 0 1' > "$R/etc/fstab"
# qemu user-net: guest 10.0.2.15, host 10.0.2.2, DNS 10.0.2.3. A static oneshot: networkd's
# DHCP cost 7 s on the ssh path under TCG.
install -m644 "$HERE/net-static.service" "$R/etc/systemd/system/net-static.service"
chroot "$R" systemctl enable net-static.service >/dev/null 2>&1
rm -f "$R/etc/resolv.conf"; echo 'nameserver 10.0.2.3' > "$R/etc/resolv.conf"
# root: key-only ssh (the key is generated per image, in OUT/keys), no password on the console.
chroot "$R" passwd -d root >/dev/null
mkdir -p "$OUT/keys"
ssh-keygen -q -t ed25519 -N '' -C barnabee-vm -f "$OUT/keys/id_ed25519"
install -d -m700 "$R/root/.ssh"; install -m600 "$OUT/keys/id_ed25519.pub" "$R/root/.ssh/authorized_keys"
printf 'PermitRootLogin prohibit-password\nUseDNS no\nPasswordAuthentication no\n' > "$R/etc/ssh/sshd_config.d/test.conf"
chroot "$R" systemctl enable ssh.service >/dev/null 2>&1
mkdir -p "$R/var/log/journal"
chroot "$R" systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
  e2scrub_reap.service systemd-networkd-wait-online.service fstrim.timer getty@tty1.service \
  >/dev/null 2>&1 || true
# The watchdog's polkit rule matches the user name barnabee-watchdog. NixOS creates that user
# statically (nixos-modules/watchdog.nix) and systemd's DynamicUser= then uses it; do the same.
chroot "$R" useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
  --user-group barnabee-watchdog
# Kernel modules we never load (GPU, media, sound, wireless, infiniband): ~150 MB less image.
for d in "$R"/lib/modules/*/kernel; do
  rm -rf "$d"/drivers/{gpu,media,infiniband,net/wireless} "$d"/sound
done
# Single quotes on purpose: the chroot's sh expands $k and ${k##*/}, not this script.
# shellcheck disable=SC2016
chroot "$R" sh -c 'for k in /lib/modules/*; do depmod "${k##*/}"; done'
# Small initrd: only what mounts the root filesystem.
sed -i 's/^MODULES=.*/MODULES=list/' "$R/etc/initramfs-tools/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\next4\n' > "$R/etc/initramfs-tools/modules"
chroot "$R" update-initramfs -u -k all >/dev/null 2>&1
cp -L "$R"/boot/initrd.img-* "$OUT/initrd.img"
# Uncompressed ELF vmlinux for PVH direct boot (saves ~3.5 s of in-guest XZ under TCG).
# The image has one Debian kernel (vmlinuz-<version>, a plain name): ls | head picks it.
# shellcheck disable=SC2012
python3 - "$(ls "$R"/boot/vmlinuz-* | head -1)" "$OUT/vmlinux" <<'P'
import lzma, sys
d = open(sys.argv[1], 'rb').read(); i = d.find(b'\xfd7zXZ\x00')
open(sys.argv[2], 'wb').write(lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(d[i:]))
P
rm -f "$OUT/disk.img"
truncate -s 3G "$OUT/disk.img"
mkfs.ext4 -q -F -L root -E root_owner=0:0 -d "$R" "$OUT/disk.img"
rm -rf "$R"
