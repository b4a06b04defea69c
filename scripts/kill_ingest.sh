#!/usr/bin/env bash
# kill -9 during ingest, then the same ingest again and `ragloop check` (docs/quality.md).
# Usage: scripts/kill_ingest.sh DATA_DIR [CORPUS] [CHUNKS_BEFORE_KILL]
set -u
cd "$(dirname "$0")/.."
d=${1:?data dir}
corpus=${2:-../shared/data/scifact/corpus.jsonl}
at=${3:-3000}
rm -rf $d
.venv/bin/ragloop ingest $corpus --data-dir $d --json > $d.1.json 2>$d.1.err &
pid=$!
# kill -9 once some groups of documents are committed (chunks, vectors and lexical entries in
# flight for the next group)
while :; do
  sleep 2
  n=$(.venv/bin/python -c "
import sqlite3
try:
    print(sqlite3.connect('file:$d/catalog.sqlite?mode=ro', uri=True).execute('select count(*) from chunks').fetchone()[0])
except Exception:
    print(0)")
  [ "$n" -ge "$at" ] && break
done
kill -9 $pid; wait $pid; echo "killed rc=$? with $n chunks committed"
.venv/bin/python - <<PY
import sqlite3
c=sqlite3.connect('$d/catalog.sqlite')
print('after kill: documents', c.execute('select count(*) from documents').fetchone()[0], 'chunks', c.execute('select count(*) from chunks').fetchone()[0], 'lexical keys', c.execute('select count(*) from chunk_lexical_keys').fetchone()[0])
PY
.venv/bin/ragloop check --data-dir $d --json > $d.check1.json; echo "check after kill rc=$?"
.venv/bin/ragloop ingest $corpus --data-dir $d --json > $d.2.json; echo "re-run rc=$?"
.venv/bin/ragloop check --data-dir $d --json > $d.check2.json; echo "check after re-run rc=$?"
