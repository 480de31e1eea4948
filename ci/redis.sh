#!/usr/bin/env bash
# Fleet sync and the `circuit` CLI against real redis-server processes that
# the tests start on free loopback ports (SYNC.md "Testing against a real
# server"): separate instance processes, kill -9 / restart, SIGSTOP, hostile
# messages, ACL users, a 3-node cluster. Needs redis-server and redis-cli
# (ci/deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."

command -v redis-server >/dev/null || { echo "redis.sh: redis-server not installed (run ci/deps.sh)"; exit 1; }
command -v redis-cli >/dev/null || { echo "redis.sh: redis-cli not installed (run ci/deps.sh)"; exit 1; }

start=$(date +%s)
cargo test -p circuit-sync -p circuit-cli --release \
  --features circuit-sync/redis-tests,circuit-cli/redis-tests
echo "redis: $(redis-server --version | cut -d' ' -f3), $(( $(date +%s) - start ))s"
