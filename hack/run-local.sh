#!/usr/bin/env bash
# `make run`: the whole system on this machine, no cluster needed. Starts a local control
# plane (envtest's kube-apiserver and etcd, CRDs installed, aggregation configured, with
# kube-controller-manager's namespace and garbage-collector controllers; the receiver's
# events API registered, so kubectl get webhookevents asks the receiver), the operator and the receiver
# as local processes and a demo destination, applies a Partner and an endpoint, and prints
# what to try. Ctrl-C stops everything. State and logs go to bin/run/.
# With DATABASE_URL=postgres://... (make run DATABASE_URL=...) two receivers share that
# PostgreSQL database instead of one embedded store: the second listens on LISTEN_PORT+1.
set -euo pipefail
cd "$(dirname "$0")/.."

RUN_DIR="${RUN_DIR:-$PWD/bin/run}"
LISTEN_PORT="${LISTEN_PORT:-8080}"
rm -rf "$RUN_DIR" && mkdir -p "$RUN_DIR"
export KUBEBUILDER_ASSETS="$(hack/setup-envtest.sh)"
KUBECTL="$KUBEBUILDER_ASSETS/kubectl"
export KUBECONFIG="$RUN_DIR/kubeconfig"

pids=()
cleanup() {
  trap - INT TERM EXIT
  echo
  echo "stopping..."
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped."
}
trap 'cleanup; exit 0' INT TERM
trap cleanup EXIT

echo "building bin/hookgate and the local tools..."
make --no-print-directory -s build
go build -o "$RUN_DIR/local-control-plane" ./hack/local-control-plane
go build -o "$RUN_DIR/demo-sink" ./hack/demo-sink

"$RUN_DIR/local-control-plane" --write-kubeconfig "$KUBECONFIG" --events-api-dir "$RUN_DIR/events-api" >"$RUN_DIR/control-plane.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 120); do
  grep -q "control plane ready" "$RUN_DIR/control-plane.log" 2>/dev/null && break
  kill -0 "${pids[0]}" 2>/dev/null || { cat "$RUN_DIR/control-plane.log"; exit 1; }
  sleep 0.5
done
grep -q "control plane ready" "$RUN_DIR/control-plane.log" || { echo "the control plane did not start" >&2; exit 1; }
echo "control plane ready"

# The control plane may have made it already, for the events API's Service.
"$KUBECTL" create namespace hookgate-system --dry-run=client -o yaml | "$KUBECTL" apply -f - >/dev/null
"$KUBECTL" create namespace partners >/dev/null
"$RUN_DIR/demo-sink" --listen 127.0.0.1:9090 >"$RUN_DIR/sink.log" 2>&1 &
pids+=($!)
bin/hookgate operator --receiver-namespace hookgate-system --shared-path-namespaces partners --metrics-bind-address 0 \
  --health-probe-bind-address 127.0.0.1:0 >"$RUN_DIR/operator.log" 2>&1 &
pids+=($!)
DATABASE_URL="${DATABASE_URL:-}"
receivers=1
[ -n "$DATABASE_URL" ] && receivers=2
# The first receiver serves the events API that the control plane registered (a Service on
# loopback has one address); a second one serves its own on a port of its choosing.
api_flags="$(cat "$RUN_DIR/events-api/receiver-flags")"
for i in $(seq 0 $((receivers - 1))); do
  suffix=""
  [ "$i" -gt 0 ] && suffix="-$i" && api_flags="--api-listen 127.0.0.1:0 --api-cert-dir $RUN_DIR/events-api"
  # The URL goes in through the environment, never on a command line that ps shows.
  HOOKGATE_DATABASE_URL="$DATABASE_URL" POD_NAME="receiver-$i" bin/hookgate receiver --namespace hookgate-system \
    --data-dir "$RUN_DIR/data$suffix" --listen "127.0.0.1:$((LISTEN_PORT + i))" --probe-listen 127.0.0.1:0 \
    --destination-allow-cidrs 127.0.0.0/8,::1/128 --public-url "http://127.0.0.1:$LISTEN_PORT" $api_flags \
    >"$RUN_DIR/audit$suffix.log" 2>"$RUN_DIR/receiver$suffix.log" &
  pids+=($!)
done

"$KUBECTL" apply -n partners -f hack/run/demo.yaml
"$KUBECTL" wait -n partners --for=condition=Ready partner/acme webhookendpoint/events --timeout=60s

cat <<EOF

hookgate is ready: receiver on http://127.0.0.1:$LISTEN_PORT, partner "acme" in namespace "partners".
$( [ "$receivers" -gt 1 ] && echo "Store: PostgreSQL, shared by a second receiver on http://127.0.0.1:$((LISTEN_PORT + 1)) (try sending to one and asking the other).")
In another terminal:

  export KUBECONFIG=$KUBECONFIG PATH=$KUBEBUILDER_ASSETS:\$PATH
  bin/hookgate send --partner acme -n partners --url http://127.0.0.1:$LISTEN_PORT/api/webhooks/events \\
      --type order.created --data '{"orderId":"ORD-456","amount":99.99}' --id evt_123
  kubectl get webhookevents -n partners
  bin/hookgate status --partner acme -n partners --url http://127.0.0.1:$LISTEN_PORT evt_123

Partner portal: http://127.0.0.1:$LISTEN_PORT/portal/ — sign in with the demo partner's API key:
  kubectl get secret -n partners acme-credentials -o jsonpath='{.data.apiKey}' | base64 -d
(its signing secret, for "Test Webhook Endpoint", is under .data.signingSecret).

Logs: $RUN_DIR/{operator,receiver,audit,sink}.log. Ctrl-C stops everything.
EOF
wait -n "${pids[@]}" || true
echo "a process exited unexpectedly; see the logs in $RUN_DIR" >&2
exit 1
