#!/usr/bin/env bash
# A real S3-compatible server for kcache's remote tests: Garage (crates.io
# package `garage`), as a 3-node cluster on loopback with replication factor 3.
#
#   scripts/garage.sh install                 build garage once into $KCACHE_TOOLS (cached)
#   scripts/garage.sh start DIR [BASE_PORT]   start 3 nodes, lay them out, create bucket and key;
#                                             writes DIR/env with the AWS_* variables for kcache
#   scripts/garage.sh stop DIR                stop every node
#   scripts/garage.sh kill-node DIR N         SIGKILL node N (1-3), then wait until the others see it failed
#   scripts/garage.sh start-node DIR N        start node N again
#   scripts/garage.sh restart DIR             start all stopped nodes, reconnect them, wait until healthy
#
# Node i (1-3) listens on BASE_PORT+10*(i-1) (S3 API), +1 (RPC) and +3 (admin),
# all on 127.0.0.1. The S3 endpoint in DIR/env is node 1's.
set -euo pipefail
tools=${KCACHE_TOOLS:-$HOME/.cache/kcache-tools}
garage=$tools/bin/garage
version=2.5.0

install() {
  if [ -x "$garage" ] && "$garage" --version 2>/dev/null | grep -q "$version"; then
    return
  fi
  mkdir -p "$tools"
  CARGO_TARGET_DIR="$tools/target" cargo install garage --version "$version" --locked --root "$tools" --quiet
}

node_cfg() { echo "$1/node$2.toml"; }

port() { # DIR NODE OFFSET
  local base
  base=$(cat "$1/base_port")
  echo $((base + 10 * ($2 - 1) + $3))
}

write_config() { # DIR NODE
  local dir=$1 n=$2
  mkdir -p "$dir/node$n/meta" "$dir/node$n/data"
  cat > "$(node_cfg "$dir" "$n")" <<EOF
metadata_dir = "$dir/node$n/meta"
data_dir = "$dir/node$n/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$(port "$dir" "$n" 1)"
rpc_public_addr = "127.0.0.1:$(port "$dir" "$n" 1)"
rpc_secret = "$(cat "$dir/rpc_secret")"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$(port "$dir" "$n" 0)"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$(port "$dir" "$n" 3)"
EOF
}

start_node() { # DIR NODE
  local dir=$1 n=$2
  RUST_LOG=${RUST_LOG:-warn} "$garage" -c "$(node_cfg "$dir" "$n")" server > "$dir/node$n.log" 2>&1 &
  echo $! > "$dir/node$n.pid"
  for _ in $(seq 100); do
    if "$garage" -c "$(node_cfg "$dir" "$n")" node id -q > /dev/null 2>&1; then
      return
    fi
    sleep 0.1
  done
  echo "garage.sh: node $n did not start; see $dir/node$n.log" >&2
  exit 1
}

g() { "$garage" -c "$(node_cfg "$dir" 1)" "$@"; }

start() { # DIR [BASE_PORT]
  if [ ! -x "$garage" ]; then
    echo "garage.sh: Garage is not built ($garage): run scripts/garage.sh install (about 15 minutes, once)" >&2
    exit 1
  fi
  dir=$(mkdir -p "$1" && cd "$1" && pwd)
  echo "${2:-3900}" > "$dir/base_port"
  head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$dir/rpc_secret"
  for n in 1 2 3; do
    write_config "$dir" "$n"
    start_node "$dir" "$n"
  done
  ids=()
  for n in 1 2 3; do
    ids+=("$("$garage" -c "$(node_cfg "$dir" "$n")" node id -q)")
  done
  printf '%s\n' "${ids[@]}" > "$dir/ids"
  g node connect "${ids[1]}" > /dev/null
  g node connect "${ids[2]}" > /dev/null
  for id in "${ids[@]}"; do
    g layout assign -z dc1 -c 1G "${id%@*}" > /dev/null
  done
  g layout apply --version 1 > /dev/null
  # The layout takes a moment to reach every node.
  for _ in $(seq 100); do
    g bucket create kcache > /dev/null 2>&1 && break
    sleep 0.2
  done
  g key create kcache-key > "$dir/key.txt"
  g bucket allow --read --write --owner kcache --key kcache-key > /dev/null
  local key_id secret
  key_id=$(grep -i 'key id' "$dir/key.txt" | awk '{print $NF}')
  secret=$(grep -i 'secret key' "$dir/key.txt" | awk '{print $NF}')
  # Every node's S3 API must answer: a port taken by another process leaves
  # a node up without its API, which tests would see as a flaky remote.
  for n in 1 2 3; do
    local s3port
    s3port=$(port "$dir" "$n" 0)
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$s3port") 2>/dev/null; then
      echo "garage.sh: node $n's S3 API does not listen on 127.0.0.1:$s3port (port taken?); see $dir/node$n.log" >&2
      exit 1
    fi
  done
  cat > "$dir/env" <<EOF
export AWS_ACCESS_KEY_ID=$key_id
export AWS_SECRET_ACCESS_KEY=$secret
export AWS_ENDPOINT=http://127.0.0.1:$(port "$dir" 1 0)
export AWS_REGION=garage
export AWS_ALLOW_HTTP=true
EOF
  echo "garage: 3 nodes up in $dir; bucket kcache; source $dir/env"
}

connect_all() { # DIR: every running node to every other (a restarted node forgets its peers)
  local dir=$1 n
  for n in 1 2 3; do
    [ -f "$dir/node$n.pid" ] || continue
    while read -r id; do
      "$garage" -c "$(node_cfg "$dir" "$n")" node connect "$id" > /dev/null 2>&1 || true
    done < "$dir/ids"
  done
}

wait_healthy() { # DIR COUNT
  local dir=$1 want=$2
  for _ in $(seq 150); do
    connect_all "$dir"
    local healthy
    healthy=$("$garage" -c "$(node_cfg "$dir" 1)" status 2>/dev/null | sed -n '/HEALTHY NODES/,/FAILED NODES/p' | grep -c '127\.0\.0\.1' || true)
    [ "$healthy" -ge "$want" ] && return
    sleep 0.2
  done
  echo "garage.sh: the cluster in $dir did not become healthy" >&2
  exit 1
}

# Garage sees a killed node as failed only after its pings go unanswered
# (~10 s here); until then a request routed to it waits for Garage's own
# RPC timeout. The tests are about a cluster that knows a node is dead.
wait_failed() { # DIR
  local dir=$1
  for _ in $(seq 150); do
    local healthy
    healthy=$("$garage" -c "$(node_cfg "$dir" 1)" status 2>/dev/null | sed -n '/HEALTHY NODES/,/FAILED NODES/p' | grep -c '127\.0\.0\.1' || true)
    [ "$healthy" -lt 3 ] && return
    sleep 0.2
  done
  echo "garage.sh: the cluster in $dir did not notice the killed node" >&2
  exit 1
}

stop() { # DIR
  local dir=$1
  for n in 1 2 3; do
    [ -f "$dir/node$n.pid" ] && kill "$(cat "$dir/node$n.pid")" 2>/dev/null || true
  done
  for n in 1 2 3; do
    [ -f "$dir/node$n.pid" ] && { wait "$(cat "$dir/node$n.pid")" 2>/dev/null || true; }
    rm -f "$dir/node$n.pid"
  done
}

case ${1:-} in
  install) install ;;
  start) install; start "$2" "${3:-}" ;;
  stop) stop "$2" ;;
  kill-node)
    kill -9 "$(cat "$2/node$3.pid")"
    rm -f "$2/node$3.pid"
    wait_failed "$2"
    ;;
  start-node)
    dir=$(cd "$2" && pwd)
    start_node "$dir" "$3"
    connect_all "$dir"
    ;;
  restart)
    dir=$(cd "$2" && pwd)
    for n in 1 2 3; do
      [ -f "$dir/node$n.pid" ] || start_node "$dir" "$n"
    done
    wait_healthy "$dir" 3
    ;;
  *) sed -n '2,14p' "$0"; exit 2 ;;
esac
