#!/usr/bin/env bash
# System tools some tests drive: tmux (the wizard tested as a person uses it), docker-registry (the CNCF
# distribution registry the push tests run against) and htpasswd (apache2-utils, its bcrypt users file).
# Installed from Debian's packages when missing and we are root; otherwise those tests skip with a reason.
set -u
missing=()
command -v tmux >/dev/null 2>&1 || missing+=(tmux)
command -v docker-registry >/dev/null 2>&1 || missing+=(docker-registry)
command -v htpasswd >/dev/null 2>&1 || missing+=(apache2-utils)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}") >/dev/null 2>&1 \
    && echo "installed: ${missing[*]}" || echo "could not install ${missing[*]}; tests that need them will skip"
else
  echo "missing ${missing[*]} (not root or no apt-get); tests that need them will skip"
fi
exit 0
