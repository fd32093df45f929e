#!/usr/bin/env bash
# Tests Outflow's Argo CD health checks (manifests/argocd/health/outflow.dev/<Kind>/health.lua)
# against their health_test.yaml cases, and that argocd-cm.yaml carries the same scripts.
# Runs them with Lua 5.1, the language Argo CD's gopher-lua implements, and Debian's lua-yaml
# (the lyaml module) to read the YAML; installs both with apt-get when they are missing.
# Ends with a line `N passed, M failed`; exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=()
command -v lua5.1 >/dev/null 2>&1 || packages+=(lua5.1)
if ! lua5.1 -e 'require("lyaml")' >/dev/null 2>&1; then
  packages+=(lua-yaml)
fi
if [ "${#packages[@]}" -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      sudo=(sudo)
    else
      echo "argocd-health-test: needs the Debian packages ${packages[*]}; run as root or install them" >&2
      exit 1
    fi
  fi
  echo "argocd-health-test: installing ${packages[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

manifests/argocd/generate.sh --check
exec lua5.1 manifests/argocd/test/run.lua manifests/argocd
