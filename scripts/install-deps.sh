#!/usr/bin/env bash
# Installs what building and testing KubeRelay needs on Debian 12, and only what is missing.
# Safe to run repeatedly: with everything present it does nothing and needs no network.
set -euo pipefail

APT_PACKAGES=(
  build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev clang-format
  libyaml-dev libgtest-dev libgmock-dev libcrypt-dev libssl-dev libasio-dev
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler
  libcpprest-dev prometheus-cpp-dev libspdlog-dev libcli11-dev nlohmann-json3-dev
  postfix swaks curl openssl python3 python3-pip prometheus python3-matplotlib
)
PY_MODULES=(pytest jsonschema yaml)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "install-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Postfix is only used for its smtp-sink test server: no mail system is configured.
  echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
  timeout 900 $SUDO apt-get update -q
  timeout 1800 $SUDO apt-get install -y -q -o DPkg::Lock::Timeout=600 "${missing[@]}"
fi

pymissing=()
for m in "${PY_MODULES[@]}"; do
  python3 -c "import $m" 2>/dev/null || pymissing+=("$m")
done
if [ ${#pymissing[@]} -gt 0 ]; then
  pkgs=()
  for m in "${pymissing[@]}"; do
    case "$m" in yaml) pkgs+=(pyyaml) ;; *) pkgs+=("$m") ;; esac
  done
  echo "install-deps: pip installing ${pkgs[*]}"
  timeout 600 python3 -m pip install -q "${pkgs[@]}" ||
    timeout 600 python3 -m pip install -q --break-system-packages "${pkgs[@]}"
fi
echo "install-deps: ok"
