#!/usr/bin/env bash
# Fleet sync and the `circuit` CLI against real redis-server processes that
# the tests start on free loopback ports (SYNC.md "Testing against a real
# server"): separate instance processes, kill -9 / restart, SIGSTOP, hostile
# messages, ACL users, a 3-node cluster, fork, quorum votes of three instance
# processes, two processes of one host sharing breakers through a segment.
# Those tests are `#[ignore]`d in the plain workspace run (ci/rust.sh) because
# they need redis-server and redis-cli (ci/deps.sh
# installs them); here they run. Selecting the test targets with --workspace
# keeps ci/rust.sh's feature resolution, so after it nothing is compiled again.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in redis-server redis-cli; do
  command -v "$tool" >/dev/null || { echo "redis.sh: $tool not installed (run ci/deps.sh)"; exit 1; }
done
# The TLS test makes its CA and certificate with the openssl CLI.
if ! command -v openssl >/dev/null; then
  echo "redis.sh: apt-get install openssl"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq openssl >/dev/null
fi

start=$(date +%s)
cargo test --workspace --release --test fleet --test fleetconf --test fork --test cli --test quorum \
  --test quorum_processes --test shared_host -- --include-ignored
echo "redis: $(redis-server --version | cut -d' ' -f3), $(( $(date +%s) - start ))s"
