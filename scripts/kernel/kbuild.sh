#!/usr/bin/env bash
# kcache's reproducible kernel build recipe. Run it in a kernel tree (the
# bisect worktree); `kcache bisect --kbuild` uses it, or pass it yourself as
# `--build`.
#
#   kbuild.sh              build: config -> olddefconfig -> vmlinux + boot image
#   kbuild.sh --identity   print what goes into the build key besides the tree
#                          and config: compiler and linker version lines, the
#                          module-signing certificate's digest, this recipe's digest
#
# Environment:
#   KCACHE_CONFIG     the config to build (kcache sets it from --config);
#                     without it the tree's .config is used as is
#   KCACHE_CACHE_DIR  where the per-cache module-signing key lives (kcache sets
#                     it; default ${XDG_CACHE_HOME:-~/.cache}/kcache)
#   ARCH, CC, LD      as for kbuild (default: the host's x86_64, gcc, ld)
#   KBUILD_JOBS       parallel jobs (default: nproc)
#
# Outputs, hard-linked into kcache-out/ in the tree (the artifacts kcache
# stores): vmlinux, boot-image, System.map, config.
#
# What makes two builds of one commit identical: pinned KBUILD_BUILD_TIMESTAMP,
# _USER, _HOST and _VERSION; LOCALVERSION set (empty), so setlocalversion does
# not append "+" or a git hash from the worktree's state; a fixed randstruct
# seed at both the old and the new location; and a module-signing key made
# once per cache (its certificate is compiled into the kernel when modules are
# signed, so its digest is part of --identity and thus of the build key).
set -euo pipefail

arch=${ARCH:-x86_64}
cc=${CC:-gcc}
ld=${LD:-ld}
cache_dir=${KCACHE_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/kcache}
key_dir=$cache_dir/kbuild
key=$key_dir/signing_key.pem
# Public and fixed on purpose: randstruct here buys reproducibility, not secrecy.
seed=6b63616368652d72616e647374727563742d736565642d7631000000000000000000000000000000000000000000000000000000000000000000000000000000

export KBUILD_BUILD_TIMESTAMP="Thu Jan  1 00:00:00 UTC 2015"
export KBUILD_BUILD_USER=kcache KBUILD_BUILD_HOST=kcache KBUILD_BUILD_VERSION=1
export LOCALVERSION=
export KCONFIG_NOTIMESTAMP=1

say() { echo "kbuild: $*" >&2; }

# The module-signing key: generated once per cache under a lock, never
# copied from anywhere. The kernel compiles its certificate in.
ensure_signing_key() {
  [ -s "$key" ] && return 0
  mkdir -p "$key_dir"
  (
    flock 9
    [ -s "$key" ] && exit 0
    local tmp=$key.tmp.$$
    cat >"$key_dir/x509.genkey" <<'EOF'
[ req ]
default_bits = 4096
distinguished_name = req_distinguished_name
prompt = no
string_mask = utf8only
x509_extensions = myexts

[ req_distinguished_name ]
CN = kcache per-cache module signing key

[ myexts ]
basicConstraints=critical,CA:FALSE
keyUsage=digitalSignature
subjectKeyIdentifier=hash
authorityKeyIdentifier=keyid
EOF
    openssl req -new -nodes -utf8 -sha256 -days 36500 -batch -x509 \
      -config "$key_dir/x509.genkey" -outform PEM -out "$tmp" -keyout "$tmp" 2>/dev/null
    mv "$tmp" "$key"
  ) 9>"$key_dir/.lock"
}

certificate_digest() {
  openssl x509 -in "$key" -outform DER | sha256sum | cut -d' ' -f1
}

identity() {
  ensure_signing_key
  echo "$("$cc" --version | head -n 1)"
  echo "$("$ld" --version | head -n 1)"
  echo "module signing certificate sha256 $(certificate_digest)"
  echo "kbuild.sh sha256 $(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)"
}

# Writes the fixed seed where randstruct looks for it: scripts/basic/
# randstruct.seed (v5.19+, whose generator we override on the command line
# because its rule regenerates the file) and scripts/gcc-plugins/
# randomize_layout_seed.h (before v5.19).
write_randstruct_seed() {
  local hash
  hash=$(printf '%s' "$seed" | sha256sum | cut -d' ' -f1)
  mkdir -p scripts/basic include/generated
  cat >"$PWD/.kcache-randstruct-seed.sh" <<EOF
#!/bin/sh
echo "$seed" > "\$1"
echo "#define RANDSTRUCT_HASHED_SEED \"$hash\"" > "\$2"
EOF
  chmod +x .kcache-randstruct-seed.sh
  echo "$seed" >scripts/basic/randstruct.seed
  if [ -d scripts/gcc-plugins ]; then
    echo "const char *randstruct_seed = \"$seed\";" >scripts/gcc-plugins/randomize_layout_seed.h
    echo "#define RANDSTRUCT_HASHED_SEED \"$hash\"" >include/generated/randomize_layout_hash.h
  fi
}

check_seed_kept() {
  if [ -f scripts/gcc-plugins/randomize_layout_seed.h ] &&
    ! grep -q "$seed" scripts/gcc-plugins/randomize_layout_seed.h; then
    say "warning: this kernel regenerated scripts/gcc-plugins/randomize_layout_seed.h;" \
      "builds with CONFIG_GCC_PLUGIN_RANDSTRUCT are not reproducible"
  fi
}

config_value() { sed -n "s/^CONFIG_$1=//p" .config; }

# Options that make the same commit build different kernels.
warn_unreproducible() {
  local v
  [ "$(config_value LOCALVERSION_AUTO)" = y ] &&
    say "warning: CONFIG_LOCALVERSION_AUTO=y puts the git commit id into the kernel: no two commits share a signature"
  v=$(config_value INITRAMFS_SOURCE)
  [ -n "$v" ] && [ "$v" != '""' ] &&
    say "warning: CONFIG_INITRAMFS_SOURCE=$v builds files from outside the tree into the kernel; kcache cannot see them change"
  [ "$(config_value IKHEADERS)" = y ] &&
    say "warning: CONFIG_IKHEADERS=y archives every header with its timestamp; no-op prediction is off for this build"
  v=$(config_value MODULE_SIG_KEY)
  [ "$(config_value MODULE_SIG)" = y ] && [ "$v" != "\"$key\"" ] &&
    say "warning: CONFIG_MODULE_SIG_KEY=$v is not the per-cache key"
  [ "$(config_value BUILD_SALT)" != '""' ] && [ -n "$(config_value BUILD_SALT)" ] &&
    say "note: CONFIG_BUILD_SALT=$(config_value BUILD_SALT) is part of the kernel"
  return 0
}

build() {
  local jobs=${KBUILD_JOBS:-$(nproc)} make_args
  make_args=(ARCH="$arch" CC="$cc" LD="$ld" "gen-randstruct-seed=$PWD/.kcache-randstruct-seed.sh" -j"$jobs")
  if [ -n "${KCACHE_CONFIG:-}" ]; then
    cp "$KCACHE_CONFIG" .config
  fi
  [ -f .config ] || { say "no config: set KCACHE_CONFIG (kcache bisect --config FILE)"; exit 2; }
  write_randstruct_seed
  make "${make_args[@]}" olddefconfig >/dev/null
  if [ "$(config_value MODULE_SIG)" = y ]; then
    ensure_signing_key
    scripts/config --set-str MODULE_SIG_KEY "$key"
    make "${make_args[@]}" olddefconfig >/dev/null
  fi
  warn_unreproducible
  make "${make_args[@]}" vmlinux
  local image
  image=$(make -s "${make_args[@]}" image_name 2>/dev/null || echo "arch/x86/boot/bzImage")
  make "${make_args[@]}" "$(basename "$image")"
  check_seed_kept
  rm -rf kcache-out
  mkdir kcache-out
  ln vmlinux kcache-out/vmlinux
  ln "$image" kcache-out/boot-image
  ln System.map kcache-out/System.map
  cp .config kcache-out/config
}

case "${1:-}" in
--identity) identity ;;
"") build ;;
*) say "usage: kbuild.sh [--identity]"; exit 2 ;;
esac
