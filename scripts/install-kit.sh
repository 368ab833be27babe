#!/usr/bin/env bash
# Install the pinned real `kit` binary into .tools/bin for the compatibility tests.
# kit is published as the Go module github.com/kitops-ml/kitops; where the Go module proxy serves it,
# `go install` builds it. Where it cannot be installed, the tests that need it skip with this reason.
set -u
KIT_VERSION="${KIT_VERSION:-v1.11.0}"
dest="$(cd "$(dirname "$0")/.." && pwd)/.tools/bin"
mkdir -p "$dest"
if [ -n "${KIT_BIN:-}" ] && [ -x "$KIT_BIN" ]; then
  echo "kit: using KIT_BIN=$KIT_BIN"; exit 0
fi
if [ -x "$dest/kit" ]; then echo "kit: $("$dest/kit" version 2>/dev/null | head -1)"; exit 0; fi
if command -v kit >/dev/null 2>&1; then echo "kit: using $(command -v kit)"; exit 0; fi
if ! command -v go >/dev/null 2>&1; then
  echo "kit: not installed (no Go toolchain); tests that need kit will skip"; exit 0
fi
if GOBIN="$dest" GOFLAGS=-mod=mod timeout 600 go install "github.com/kitops-ml/kitops@${KIT_VERSION}" >"$dest/../kit-install.log" 2>&1; then
  ln -sf "$dest/kitops" "$dest/kit"
  echo "kit: installed $KIT_VERSION into $dest"
else
  echo "kit: could not be installed ($(tail -n 2 "$dest/../kit-install.log" | tr '\n' ' ')); tests that need kit will skip"
fi
exit 0
