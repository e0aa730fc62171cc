#!/bin/sh
# promtool check config / rules on deploy/prometheus (Debian package prometheus).
# Exit 77 (skipped) when promtool is not installed.
#   tests/deploy/promtool_check.sh [REPO_ROOT]
root=${1:-$(cd "$(dirname "$0")/../.." && pwd)}
if ! command -v promtool >/dev/null 2>&1; then
  echo "SKIPPED: promtool not found (Debian package prometheus; scripts/setup.sh installs it)"
  exit 77
fi
set -e
cd "$root/deploy/prometheus"
promtool check rules rules/*.yml
# check config also checks the rule files it names, relative to the config file.
promtool check config prometheus.yml
