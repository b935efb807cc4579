#!/usr/bin/env bash
# The Orleans cluster end to end on 127.0.0.1: a Redis membership table, three silos and a client featurize the demo set
# across the silos (one silo killed with kill -9 in the middle of an item), merge the shards, and compare the store with a
# single-machine featurize (cmp, file by file); then the silos serve the shards (each its own two shards plus a replica
# of its neighbour's) and 20 queries are answered by the cluster (its head holding only the merged store's small files,
# no features.npy) and by one machine; last, the HTTP server fronts the cluster (--cluster-store) beside the single-machine
# store and answers 5 seed queries from both. Prints one 'identical: yes|no' line for the store, one for the queries and
# one for the server's answers, and the server's p50 latency per store. Everything it starts is stopped on exit. Work
# lands in out/cluster-demo/.
set -euo pipefail
cd "$(dirname "$0")/.."
export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
out=out/cluster-demo
model=models/fm16
subset=0:450 timesteps=2 dim=384 items=6
rm -rf "$out/cluster" "$out/single" "$out/logs" "$out/http"
mkdir -p "$out/logs" "$out/cluster" "$out/single" "$out/http"

if ! command -v redis-server >/dev/null 2>&1; then
  echo "== installing redis-server (Debian's package, for the membership table)"
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null \
    || { $sudo apt-get update -q >/dev/null && $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q redis-server >/dev/null; }
fi

echo "== build: the CLI (single-machine reference) and the cluster host"
dotnet build src/OnnxAttribution.Cli -c Release -v q -nologo -o "$out/cli" >/dev/null
dotnet build src/OnnxAttribution.ClusterHost -c Release -v q -nologo -o "$out/host" >/dev/null
dotnet build src/OnnxAttribution.Server -c Release -v q -nologo -o "$out/server" >/dev/null
cli="$out/cli/onnx-attribution" host="$out/host/onnx-attribution-cluster" server="$out/server/onnx-attribution-server"

pids=()  # redis-server first
stop_all() {  # clients and silos first (a stopping silo writes its death to Redis), Redis (the first pid) last
  for pid in "${pids[@]:1}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]:1}"; do wait "$pid" 2>/dev/null || true; done
  [ ${#pids[@]} -gt 0 ] && { kill "${pids[0]}" 2>/dev/null || true; wait "${pids[0]}" 2>/dev/null || true; }
}
trap stop_all EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'; }
redis_port=$(free_port)
echo "== membership: redis-server on 127.0.0.1:$redis_port (no persistence)"
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --protected-mode yes >"$out/logs/redis.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis="127.0.0.1:$redis_port"
cluster_id="demo-$$"

work="$PWD/$out/cluster/work"
item() { printf '%s/shard-%05d-of-%05d' "$work" "$1" "$items"; }
declare -A silo_pid
start_silo() {  # silo j serves items j and j+3, and a replica of its neighbour's two
  local j=$1 n=$(( ($1 + 1) % 3 ))
  "$host" silo --redis "$redis" --cluster-id "$cluster_id" --name "silo$j" --silo-port "$(free_port)" --gateway-port "$(free_port)" \
    --serve "demo=$(item $j),demo=$(item $((j + 3))),demo=$(item $n),demo=$(item $((n + 3)))" >"$out/logs/silo$j.log" 2>&1 &
  silo_pid[$j]=$!
  pids+=($!)
}
echo "== three silos"
for j in 0 1 2; do start_silo "$j"; done

echo "== single machine: featurize $subset (d-trak, $timesteps timesteps, k = $dim, float16) with the CLI"
single_start=$(date +%s.%N)
"$cli" featurize --model "$model" --data embedded --subset "$subset" --method d-trak --timesteps "$timesteps" \
  --dim "$dim" --dtype float16 --out "$out/single/store" >"$out/logs/single.log"
single_s=$(python3 -c "import time; print(f'{time.time() - $single_start:.1f}')")
echo "   $single_s s"

echo "== cluster: featurize the same rows in $items items across the silos; silo1 is killed (-9) in the middle of an item"
"$host" featurize --redis "$redis" --cluster-id "$cluster_id" --model "$model" --subset "$subset" --method d-trak \
  --timesteps "$timesteps" --dim "$dim" --dtype float16 --items "$items" --work "$work" --lease-seconds 10 \
  --out "$out/cluster/store" >"$out/logs/featurize.log" 2>&1 &
client=$!
pids+=($client)
killed=no
while kill -0 "$client" 2>/dev/null; do
  if [ "$killed" = no ] && grep -qE 'silo1@[^:]+:[0-9]+:[0-9]+: item [0-9]+ \([1-9][0-9]*/' "$out/logs/featurize.log"; then
    echo "   $(grep -E 'silo1@' "$out/logs/featurize.log" | tail -1 | sed 's/^.*\] //')"
    kill -9 "${silo_pid[1]}"
    killed=yes
    echo "   kill -9 silo1 (pid ${silo_pid[1]})"
  fi
  sleep 0.2
done
wait "$client" || { echo "cluster featurize failed:"; tail -20 "$out/logs/featurize.log"; exit 1; }
tail -1 "$out/logs/featurize.log" | sed 's/^/   /'
[ "$killed" = yes ] || echo "   (silo1 ran no item long enough to be killed mid-item)"

same=yes
# history.json records when and by which command each version was made (times, the tool's command line), so it differs by
# design; every other file must be the same bytes.
for f in "$out/single/store"/*; do
  name=$(basename "$f")
  [ "$name" = history.json ] && continue
  cmp -s "$f" "$out/cluster/store/$name" || { same=no; echo "   differs: $name"; }
done
[ "$(ls "$out/single/store" | sort)" = "$(ls "$out/cluster/store" | sort)" ] || { same=no; echo "   the file lists differ"; }
echo "store (cmp of every file but history.json, cluster vs single machine): identical: $same"

echo "== serve: finalize both stores, then 20 generated queries, cluster (silo1 still dead: replicas answer) vs one machine"
"$cli" finalize --store "$out/single/store" >/dev/null
"$cli" finalize --store "$out/cluster/store" >/dev/null
"$host" query --redis "$redis" --cluster-id "$cluster_id" --store demo --model "$model" --head "$out/single/store" \
  --seed 0 --count 20 --top 10 --local --out "$out/single/answers.tsv"
# The head needs the merged store's small files only: a folder without features.npy (nor done.bitmap).
mkdir -p "$out/cluster/head"
for f in meta.json preconditioner.bin checksums.json source.json method.json; do
  [ -f "$out/cluster/store/$f" ] && cp "$out/cluster/store/$f" "$out/cluster/head/"
done
"$host" query --redis "$redis" --cluster-id "$cluster_id" --store demo --model "$model" --head "$out/cluster/head" \
  --seed 0 --count 20 --top 10 --out "$out/cluster/answers.tsv" | sed 's/^/   /' || true
answers=no
cmp -s "$out/single/answers.tsv" "$out/cluster/answers.tsv" && answers=yes
echo "answers of 20 queries (rows and scores, cluster with a head without features.npy vs single machine): identical: $answers"
"$host" query --redis "$redis" --cluster-id "$cluster_id" --store demo --model "$model" --head "$out/cluster/store" \
  --seed 0 --count 1 --top 10 --bench 50 --out "$out/cluster/bench.tsv" | grep '^bench' | sed 's/^/   /' || true

echo "== HTTP: the server fronts the cluster (--cluster-store demo) beside the single-machine store (--store local)"
http_port=$(free_port)
"$server" --cluster-store "demo=$out/cluster/head" --store "local=$out/single/store" --model "$model" \
  --cluster-redis "$redis" --cluster-id "$cluster_id" --urls "http://127.0.0.1:$http_port" >"$out/logs/server.log" 2>&1 &
pids+=($!)
url="http://127.0.0.1:$http_port"
for _ in $(seq 300); do curl -sf "$url/readyz" >/dev/null 2>&1 && break; sleep 0.2; done
curl -sf "$url/readyz" >/dev/null || { echo "the server did not become ready:"; tail -20 "$out/logs/server.log"; exit 1; }
ask() {  # ask STORE BODY OUT: one POST, the answer's JSON in OUT
  curl -sf -H 'Content-Type: application/json' --data "$2" "$url/stores/$1/attribute?top=10" >"$3"
}
ask demo '{"seeds": [0, 1, 2, 3, 4], "steps": 50}' "$out/http/demo.json"
ask local '{"seeds": [0, 1, 2, 3, 4], "steps": 50}' "$out/http/local.json"
http_same=$(python3 - "$out/http/demo.json" "$out/http/local.json" <<'PY'
import json, sys
demo, local = (json.load(open(p)) for p in sys.argv[1:3])
rows = lambda a: [[(r["index"], r["score"]) for r in q["top"]] for q in a["rankings"]]
complete = demo.get("partial") is False and demo.get("missing") == []
print("yes" if complete and len(demo["rankings"]) == 5 and rows(demo) == rows(local) else "no")
PY
)
echo "server answers of 5 seed queries (rows and scores, --cluster-store vs --store on one server): identical: $http_same"
python3 -c 'import json, random; random.seed(7); print(json.dumps({"images": [[random.uniform(-1, 1) for _ in range(256)]]}))' >"$out/http/image.json"
for i in $(seq 50); do  # alternating, so both stores see the same load of the machine
  for store in local demo; do
    t=$(curl -s -o "$out/http/$store-$i.json" -w '%{time_total}' -H 'Content-Type: application/json' \
      --data @"$out/http/image.json" "$url/stores/$store/attribute?top=10")
    echo "$store $t" >>"$out/http/latency.txt"
  done
done
python3 - "$out/http" <<'PY'
import json, statistics, sys
d = sys.argv[1]
lines = [l.split() for l in open(f"{d}/latency.txt")]
for store, last in (("local", "scan"), ("demo", "fan-out")):
    ms = [1000 * float(t) for s, t in lines if s == store]
    stages = [json.load(open(f"{d}/{store}-{i}.json"))["timings"]["stagesMs"] for i in range(1, len(ms) + 1)]
    med = lambda k: statistics.median(x.get(k, 0.0) for x in stages)
    print(f"   {store}: p50 {statistics.median(ms):.1f} ms over {len(ms)} requests (curl, one image query each); "
          f"server's stages p50: features {med('features'):.1f} ms, solve {med('solve'):.1f} ms, {last} {med(last):.2f} ms")
PY
