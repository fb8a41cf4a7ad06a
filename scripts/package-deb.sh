#!/usr/bin/env bash
# Builds the Debian package (chartvault_VERSION_ARCH.deb) from built binaries, with dpkg-deb:
# the binaries, the systemd unit, the production settings in /etc/chartvault, the operator's
# guide, and the maintainer scripts (packaging/debian/).
#
#   cargo build --release --bin chartvault --bin chartvault-decoder
#   scripts/package-deb.sh                       # target/release -> target/debian/
#   scripts/package-deb.sh --bin-dir target/debug --out DIR --compression none   # (tests)
set -euo pipefail
cd "$(dirname "$0")/.."

bin_dir=target/release
out=target/debian
compression=xz
while [ $# -gt 0 ]; do
  case "$1" in
    --bin-dir) bin_dir="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --compression) compression="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

for binary in chartvault chartvault-decoder; do
  if [ ! -x "$bin_dir/$binary" ]; then
    echo "$bin_dir/$binary is missing: build it first (cargo build --release)" >&2
    exit 1
  fi
done

version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
arch=$(dpkg --print-architecture)
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

install -d "$root/DEBIAN" "$root/usr/bin" "$root/lib/systemd/system" "$root/etc/chartvault" \
  "$root/usr/share/doc/chartvault"
install -m 0755 "$bin_dir/chartvault" "$bin_dir/chartvault-decoder" "$root/usr/bin/"
install -m 0644 packaging/debian/chartvault.service "$root/lib/systemd/system/"
install -m 0640 packaging/debian/config.toml "$root/etc/chartvault/config.toml"
install -m 0644 packaging/debian/copyright "$root/usr/share/doc/chartvault/copyright"
install -m 0644 README.md docs/operations.md "$root/usr/share/doc/chartvault/"
for script in postinst prerm postrm; do
  install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
done
echo /etc/chartvault/config.toml > "$root/DEBIAN/conffiles"
size=$(du -sk --exclude=DEBIAN "$root" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@ARCH@/$arch/" -e "s/@SIZE@/$size/" \
  packaging/debian/control.in > "$root/DEBIAN/control"

mkdir -p "$out"
package="$out/chartvault_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Z"$compression" --build "$root" "$package" >/dev/null
echo "$package"
