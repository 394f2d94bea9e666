# drops: build DROPS/L4 network-boot images, serve them, boot them.
#
#   make demo      build the tool and the selftest image, serve it, netboot it in QEMU, show the verified modules
#   make test      run every test (installs Debian packages first: needs root or sudo)
#   make deps      install the Debian packages the project needs, only those missing
#   make build     build the tools (SwiftPM) and the probe kernel (gcc -m32)
#   make bench     measure drops-serve beside tftpd-hpa and dnsmasq (release build)
#   make install   install the tools and profiles under PREFIX (default /usr/local)
#   make clean     remove everything built

PREFIX ?= /usr/local
SWIFT ?= swift
CONFIG ?= debug
BIN = .build/$(CONFIG)
PROBE_OUT := $(CURDIR)/build/probe

# Debian packages: QEMU and its iPXE ROMs boot the images, gcc-multilib builds the probe
# kernel, pxelinux/syslinux-common provide the PXELINUX files copied into every tree;
# curl, tftp-hpa and atftp are the TFTP clients of the tests, tftpd-hpa and dnsmasq the
# reference servers of the benchmark; libarchive-dev writes and reads RAM disks, GNU cpio
# reads them back in the tests; ipxe (undionly.kpxe, ipxe.efi) and ovmf are what drops-serve
# pxe hands out and what the lab tests' UEFI guest runs, grub-pc-bin and grub-efi-amd64-bin
# hold the GRUB 2 modules for BIOS and UEFI network images, iproute2 and tcpdump build and
# watch the lab network; openipmi (ipmi_sim) and ipmitool are a lab PC's BMC and the tool
# drops-run switches it with, ser2net the console server it reads; libxml2-utils (xmllint)
# checks the JUnit reports against a schema, perl's prove reads the TAP ones.
DEB_PACKAGES := qemu-system-x86 ipxe-qemu gcc-multilib pxelinux syslinux-common grub-pc-bin grub-efi-amd64-bin make \
	libcurl4-openssl-dev python3 \
	curl tftp-hpa atftp tftpd-hpa dnsmasq-base libarchive-dev pkg-config cpio \
	xz-utils lz4 busybox-static isolinux e2fsprogs faketime libarchive-tools \
	ipxe ovmf iproute2 tcpdump openipmi ipmitool ser2net libxml2-utils ndisc6 nginx-light

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: kernel busybox-i386 all deps build probe test demo bench install uninstall clean

all: build

deps:
	@missing=""; \
	for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "make deps: installing$$missing"; \
	  $(SUDO) apt-get update -q && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -q $$missing; \
	else echo "make deps: all Debian packages present"; fi

probe:
	$(MAKE) -C Sources/ProbeKernel OUT=$(PROBE_OUT)

build: probe
	$(SWIFT) build -c $(CONFIG)

# Debian's own kernel (linux-image-amd64's current package), for the RAM disk boot tests;
# fetched with apt-get download, never committed, unpacked by the tests with libarchive.
# Its e1000 driver (a module in Debian's kernel) goes into overlay/, which the linux
# profile adds to its RAM disk so the run-time step can reach the network.
KERNEL_DIR := build/kernel
kernel:
	@mkdir -p $(KERNEL_DIR); \
	pkg=$$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-/ { print $$2; exit }'); \
	if [ -z "$$pkg" ]; then echo "make kernel: apt knows no linux-image-amd64 (apt-get update?)"; exit 1; fi; \
	if ls $(KERNEL_DIR)/$${pkg}_*.deb >/dev/null 2>&1; then echo "make kernel: $$pkg present"; \
	else (cd $(KERNEL_DIR) && apt-get download -q $$pkg); fi; \
	bsdtar -xOf $(KERNEL_DIR)/$${pkg}_*.deb 'data.tar.*' | bsdtar -xOf - './boot/vmlinuz-*' > $(KERNEL_DIR)/vmlinuz.new && \
	mv $(KERNEL_DIR)/vmlinuz.new $(KERNEL_DIR)/vmlinuz && echo "make kernel: $(KERNEL_DIR)/vmlinuz from $$pkg" && \
	mkdir -p $(KERNEL_DIR)/overlay/lib/modules && \
	bsdtar -xOf $(KERNEL_DIR)/$${pkg}_*.deb 'data.tar.*' | bsdtar -xOf - './lib/modules/*/e1000.ko' > $(KERNEL_DIR)/overlay/lib/modules/e1000.ko.new && \
	mv $(KERNEL_DIR)/overlay/lib/modules/e1000.ko.new $(KERNEL_DIR)/overlay/lib/modules/e1000.ko && \
	echo "make kernel: $(KERNEL_DIR)/overlay/lib/modules/e1000.ko (the RAM disk's network driver)"

# BusyBox for ia32 RAM disks (L4Linux on ia32 runs i386 binaries): Debian's busybox-static
# of architecture i386 (multiarch), fetched with apt-get download, unpacked with bsdtar.
BUSYBOX_I386 := build/busybox-i386
busybox-i386:
	@mkdir -p $(BUSYBOX_I386); \
	if [ -x $(BUSYBOX_I386)/busybox ] && [ -s $(BUSYBOX_I386)/busybox.version ]; then echo "make busybox-i386: present"; exit 0; fi; \
	dpkg --print-foreign-architectures | grep -qx i386 || { $(SUDO) dpkg --add-architecture i386; $(SUDO) apt-get update -q || true; }; \
	rm -f $(BUSYBOX_I386)/*.deb; \
	(cd $(BUSYBOX_I386) && apt-get download -q busybox-static:i386) || \
	  { $(SUDO) apt-get update -q || true; (cd $(BUSYBOX_I386) && apt-get download -q busybox-static:i386); } || exit 1; \
	deb=$$(ls $(BUSYBOX_I386)/*.deb) && \
	bsdtar -xOf $$deb 'data.tar.*' | bsdtar -xOf - ./bin/busybox > $(BUSYBOX_I386)/busybox.new && \
	chmod 755 $(BUSYBOX_I386)/busybox.new && mv $(BUSYBOX_I386)/busybox.new $(BUSYBOX_I386)/busybox && \
	echo "$$(dpkg-deb -f $$deb Version) i386" > $(BUSYBOX_I386)/busybox.version && \
	echo "make busybox-i386: $(BUSYBOX_I386)/busybox $$(cat $(BUSYBOX_I386)/busybox.version)"

test: deps build kernel busybox-i386
	$(MAKE) -C Sources/ProbeKernel OUT=$(PROBE_OUT) check
	$(SWIFT) test -c $(CONFIG)

demo: deps build
	$(BIN)/drops-build profile selftest
	$(BIN)/drops-build verify out/selftest
	$(BIN)/drops-run selftest --kvm off

bench: deps probe
	$(SWIFT) build -c release --product drops-serve
	$(SWIFT) build -c release --product drops-build
	$(SWIFT) build -c release --product drops-run
	$(SWIFT) build -c release --product drops-bench
	.build/release/drops-build profile selftest -q
	.build/release/drops-bench $(BENCH_ARGS)

install: CONFIG = release
install: build
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/drops/profiles
	install -m 755 $(BIN)/drops-build $(BIN)/drops-serve $(BIN)/drops-run $(DESTDIR)$(PREFIX)/bin/
	install -m 644 profiles/*.toml $(DESTDIR)$(PREFIX)/share/drops/profiles/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(PREFIX)/bin/,drops-build drops-serve drops-run)
	rm -rf $(DESTDIR)$(PREFIX)/share/drops

clean:
	rm -rf .build out build
