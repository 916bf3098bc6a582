#!/usr/bin/env bash
# Installs, from Debian's packages, what building and testing yujing need and the
# machine lacks: a C toolchain and zlib for rdkafka's bundled librdkafka, python3-venv
# for the tests' independent Kafka client, and Prometheus, promtool, Alertmanager
# and amtool for the operations tests, and Chromium with ChromeDriver (and a CJK
# font) for the duty console's browser test. Does nothing when all are there.
# `scripts/deps.sh build` checks only what the build needs.
set -euo pipefail
need=()
command -v cc >/dev/null 2>&1 || need+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
command -v make >/dev/null 2>&1 || need+=(make)
dpkg -s zlib1g-dev >/dev/null 2>&1 || need+=(zlib1g-dev)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need+=(python3-venv)
if [ "${1:-}" != "build" ]; then
  { [ -x /usr/bin/prometheus ] && [ -x /usr/bin/promtool ]; } || need+=(prometheus)
  { [ -x /usr/bin/prometheus-alertmanager ] && [ -x /usr/bin/amtool ]; } || need+=(prometheus-alertmanager)
  [ -x /usr/bin/chromium ] || need+=(chromium)
  [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
  dpkg -s fonts-wqy-zenhei >/dev/null 2>&1 || need+=(fonts-wqy-zenhei)
fi
if [ ${#need[@]} -eq 0 ]; then exit 0; fi
echo "== installing ${need[*]}"
sudo_cmd=""; [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
$sudo_cmd apt-get update -qq
# No recommends: the packages' services are not wanted, only their programs.
DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${need[@]}"
