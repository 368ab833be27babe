#!/usr/bin/env bash
# Tools some tests drive, installed when missing (tests that need one that could not be installed skip with
# a printed reason):
#   tmux             the wizard tested as a person uses it           (Debian package)
#   docker-registry  the CNCF distribution registry of the push tests (Debian package; never started as a service)
#   htpasswd         its bcrypt users file                           (Debian apache2-utils)
#   sshd             a real SFTP artifact store                       (Debian openssh-server; never started as a service)
#   fake-gcs-server  a Google Cloud Storage emulator                  (go install, into .tools/bin)
#   azurite          an Azure Blob Storage emulator, run with node    (npm, into .tools/azurite)
#   cosign           sigstore's CLI: checks the attestations kitmlflow pushes (go install, into .tools/bin; ~10 min cold)
#   referrers-registry  a loopback registry with the OCI 1.1 referrers API (tests/support/referrers_registry, go build)
set -u
cd "$(dirname "$0")/.."
TOOLS="$PWD/.tools"
FAKE_GCS_VERSION=v1.56.1
COSIGN_VERSION=v3.1.3
AZURITE_VERSION=3.37.0
mkdir -p "$TOOLS/bin"

debs=()
command -v tmux >/dev/null 2>&1 || debs+=(tmux)
command -v docker-registry >/dev/null 2>&1 || debs+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || debs+=(apache2-utils)
{ [ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1; } || debs+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1 || debs+=(openssh-client)
if [ ${#debs[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    # policy-rc.d keeps the packages from starting system services; the tests start their own on loopback ports.
    (apt-get update -qq && printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${debs[@]}"; rc=$?; rm -f /usr/sbin/policy-rc.d; exit $rc) \
      >/dev/null 2>&1 && echo "installed: ${debs[*]}" || echo "could not install ${debs[*]}; tests that need them will skip"
  else
    echo "missing ${debs[*]} (not root or no apt-get); tests that need them will skip"
  fi
fi

if [ ! -x "$TOOLS/bin/fake-gcs-server" ]; then
  if command -v go >/dev/null 2>&1; then
    GOBIN="$TOOLS/bin" go install "github.com/fsouza/fake-gcs-server@$FAKE_GCS_VERSION" >/dev/null 2>&1 \
      && echo "installed: fake-gcs-server $FAKE_GCS_VERSION" \
      || echo "could not install fake-gcs-server; the GCS store tests will skip"
  else
    echo "no go toolchain: the GCS store tests will skip"
  fi
fi

if [ ! -x "$TOOLS/azurite/node_modules/.bin/azurite-blob" ]; then
  if command -v npm >/dev/null 2>&1 && command -v node >/dev/null 2>&1; then
    npm install --silent --no-audit --no-fund --prefix "$TOOLS/azurite" "azurite@$AZURITE_VERSION" >/dev/null 2>&1 \
      && echo "installed: azurite $AZURITE_VERSION" \
      || echo "could not install azurite; the Azure store tests will skip"
  else
    echo "no node/npm: the Azure store tests will skip"
  fi
fi
if [ ! -x "$TOOLS/bin/cosign" ] && ! command -v cosign >/dev/null 2>&1; then
  if command -v go >/dev/null 2>&1; then
    GOBIN="$TOOLS/bin" go install "github.com/sigstore/cosign/v3/cmd/cosign@$COSIGN_VERSION" >/dev/null 2>&1 \
      && echo "installed: cosign $COSIGN_VERSION" \
      || echo "could not install cosign; the attestation tests check the recorded vectors only"
  else
    echo "no go toolchain: no cosign; the attestation tests check the recorded vectors only"
  fi
fi

if [ ! -x "$TOOLS/bin/referrers-registry" ] \
  || [ -n "$(find tests/support/referrers_registry -newer "$TOOLS/bin/referrers-registry" -type f 2>/dev/null)" ]; then
  if command -v go >/dev/null 2>&1; then
    (cd tests/support/referrers_registry && go build -o "$TOOLS/bin/referrers-registry" .) >/dev/null 2>&1 \
      && echo "built: referrers-registry" \
      || echo "could not build tests/support/referrers_registry; the referrers-API tests will skip"
  else
    echo "no go toolchain: no referrers-registry; the referrers-API tests will skip"
  fi
fi
exit 0
