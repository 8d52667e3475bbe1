# shellcheck shell=bash
# checks/systemd-vm (the appliance's units under real systemd in a Debian guest): qemu (TCG,
# or KVM where the CPU has it), mmdebstrap to build the guest image once (cached in
# $CACHE/vm/<recipe hash>/ by checks/systemd-vm/run), e2fsprogs for `mkfs.ext4 -d`, ssh into
# the guest, binutils (objcopy) to strip the binaries copied in, curl, python3 for the reports.
apt_need qemu-system-x86 mmdebstrap e2fsprogs openssh-client binutils curl python3 util-linux
