#!/usr/bin/env bash
# REST from cached bytes (issue 14): wrk -t1 -c16 against the release daemon with the real
# event running: the best-run results (identity, gzip, 304) and a static file of the same
# bytes from the same server. Needs wrk (apt-get install wrk) and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=./target/release/c123-live
DIR=$(mktemp -d)
PORT=18089
KEY=bench-master-key-0123456789
mkdir -p $DIR/static; echo "<!doctype html><title>x</title>" > $DIR/static/index.html
$BIN serve --listen 127.0.0.1:$PORT --db $DIR/live.db --master-key $KEY --static-dir $DIR/static > $DIR/log 2>&1 &
PID=$!
trap 'kill $PID 2>/dev/null; rm -rf $DIR' EXIT
for i in $(seq 50); do curl -sf http://127.0.0.1:$PORT/health >/dev/null && break; sleep 0.1; done
APIKEY=$(curl -sf -X POST -H "X-Master-Key: $KEY" -H 'Content-Type: application/json' -d '{"eventId":"EV","mainTitle":"Bench"}' http://127.0.0.1:$PORT/api/v1/admin/events | python3 -c 'import sys,json;print(json.load(sys.stdin)["apiKey"])')
python3 - "$APIKEY" $PORT <<'PY'
import json,sys,urllib.request
key,port=sys.argv[1],sys.argv[2]
xml=open('fixtures/jarni-2024.xml').read()
def call(method,path,body):
    r=urllib.request.Request(f'http://127.0.0.1:{port}{path}',data=json.dumps(body).encode(),method=method,headers={'X-API-Key':key,'Content-Type':'application/json'})
    return urllib.request.urlopen(r).read()
call('POST','/api/v1/ingest/xml',{'xml':xml})
for s in ['startlist','running']:
    call('PATCH','/api/v1/admin/events/EV/status',{'status':s})
PY
RACE=${RACE:-K1M_ST_BR2_6}
URL=http://127.0.0.1:$PORT/api/v1/events/EV/results/$RACE
BYTES=$(curl -s $URL | wc -c)
echo "race $RACE: $BYTES bytes identity, $(curl -s -H 'Accept-Encoding: gzip' $URL | wc -c) bytes gzip"
ETAG=$(curl -sI $URL | awk -F': ' 'tolower($1)=="etag"{print $2}' | tr -d '\r')
# A static file of the same bytes from the same server (--static-dir).
curl -s $URL > $DIR/static/same.json
STATIC=http://127.0.0.1:$PORT/same.json
echo "static same.json: $(curl -s $STATIC | wc -c) bytes"
echo "== uptime before: $(uptime)"
echo "== GET results (identity)"; wrk -t1 -c16 -d10s $URL | grep -E "Requests/sec|Latency|Transfer"
echo "== GET results (gzip)"; wrk -t1 -c16 -d10s -H 'Accept-Encoding: gzip' $URL | grep -E "Requests/sec|Latency|Transfer"
echo "== GET results, If-None-Match (304)"; wrk -t1 -c16 -d10s -H "If-None-Match: $ETAG" $URL | grep -E "Requests/sec|Latency|Transfer"
echo "== GET static file of the same size (identity)"; wrk -t1 -c16 -d10s $STATIC | grep -E "Requests/sec|Latency|Transfer"
echo "== uptime after: $(uptime)"
