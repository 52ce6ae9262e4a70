#!/usr/bin/env bash
# Installs what smelt needs to build, test and run its demo, from Debian's packages.
# Idempotent: when everything is present it changes nothing and asks no registry.
set -euo pipefail

packages=(
  make gcc
  llvm-22-dev lld-22 clang-22 libclang-rt-22-dev   # codegen, AMD linking, libFuzzer
  flex bison                                        # the model language front end
  libcriterion-dev                                  # test suites
  zlib1g-dev                                        # gzipped data files, ingot sections
  protobuf-c-compiler libprotobuf-c-dev libonnx-dev  # the ONNX importer (onnx.proto, protoc-c)
  pkgconf                                           # the install check links a program with pkg-config
  openmpi-bin libopenmpi-dev                        # data-parallel training under mpirun, and its tests
  dataset-fashion-mnist fortunes                    # data for the examples
)

missing=()
for p in "${packages[@]}"; do
  if [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" != *"install ok installed"* ]]; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/deps.sh: this system has no apt-get; install these Debian packages (or your" >&2
  echo "system's equivalents) and run make again:" >&2
  echo "  ${missing[*]}" >&2
  exit 1
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
    echo "scripts/deps.sh: not root and no sudo; as root run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

echo "scripts/deps.sh: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
