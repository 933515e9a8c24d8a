#!/usr/bin/env bash
# The main job on the embedded default (local journals, no database): a bastion's connection
# events of yesterday are filed durably into the collector's journal, the hospital's RSSI
# files the vendor, its staff list and a maintenance window into the auditor's ledger, the
# chain is verified, and a conformance report is written as HTML.
#
# Usage: deploy/demo.sh [DIR]   (DIR must not exist; default ./vigie-demo)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
dir=${1:-./vigie-demo}
if [ -e "$dir" ]; then
  echo "$dir already exists: remove it or name another directory" >&2
  exit 2
fi

cargo build --release --quiet -p collector -p auditor
collector=target/release/collector
auditor=target/release/auditor
mkdir -p "$dir"

# Yesterday, in Paris time, as the bastion would have logged it.
at() { TZ=Europe/Paris date -d "yesterday $1" +%Y-%m-%dT%H:%M:%S%:z; }
day=$(TZ=Europe/Paris date -d yesterday +%Y-%m-%d)
cat > "$dir/events.jsonl" <<JSON
{"kind":"auth_success","tenant":"chu-annecy","source":"bastion-01","vendor":"imagerie-sa","person":"jeanne.martin@imagerie-sa.example","account":"maint-pacs","target":"srv-pacs-01","protocol":"ssh","source_addr":"203.0.113.7","session_id":"S-1001","factors":["public_key","otp"],"occurred_at":"$(at 22:04:51)"}
{"kind":"session_start","tenant":"chu-annecy","source":"bastion-01","vendor":"imagerie-sa","person":"jeanne.martin@imagerie-sa.example","account":"maint-pacs","target":"srv-pacs-01","protocol":"ssh","source_addr":"203.0.113.7","session_id":"S-1001","factors":["public_key","otp"],"occurred_at":"$(at 22:05:00)"}
{"kind":"session_end","tenant":"chu-annecy","source":"bastion-01","vendor":"imagerie-sa","person":"jeanne.martin@imagerie-sa.example","account":"maint-pacs","target":"srv-pacs-01","protocol":"ssh","source_addr":"203.0.113.7","session_id":"S-1001","occurred_at":"$(at 23:41:12)"}
{"kind":"session_start","tenant":"chu-annecy","source":"bastion-01","vendor":"imagerie-sa","person":"hugo.roux@imagerie-sa.example","account":"hroux","target":"srv-lab-02","protocol":"rdp","source_addr":"198.51.100.23","session_id":"S-1002","factors":["password"],"occurred_at":"$(at 03:12:40)"}
{"kind":"session_end","tenant":"chu-annecy","source":"bastion-01","vendor":"imagerie-sa","person":"hugo.roux@imagerie-sa.example","account":"hroux","target":"srv-lab-02","protocol":"rdp","source_addr":"198.51.100.23","session_id":"S-1002","occurred_at":"$(at 03:58:02)"}
JSON

echo "== the bastion's events, filed durably in the collector's journal"
"$collector" --data-dir "$dir/events" import "$dir/events.jsonl"

echo "== the RSSI's declarations, filed in the auditor's ledger"
declare() { "$auditor" declare --ledger "$dir/ledger" --tenant chu-annecy --by rssi.annecy "$@"; }
declare vendor --vendor imagerie-sa --name "Imagerie SA"
declare staff --vendor imagerie-sa --csv deploy/samples/staff-imagerie-sa.csv
declare window --vendor imagerie-sa --id W-PACS --reason "mise à jour PACS" \
  --approver rssi.annecy --start "${day}T21:00" --end "${day}T23:59"

echo "== verification of the collector's chain"
"$auditor" verify --journal "$dir/events"

echo "== conformance report of yesterday"
status=0
"$auditor" report --ledger "$dir/ledger" --events "$dir/events" --tenant chu-annecy \
  --from "$day" --to "$(TZ=Europe/Paris date +%Y-%m-%d)" --by auditeur \
  --format csv --out "$dir/report.csv" || status=$?
"$auditor" report --ledger "$dir/ledger" --events "$dir/events" --tenant chu-annecy \
  --from "$day" --to "$(TZ=Europe/Paris date +%Y-%m-%d)" --by auditeur \
  --format html --out "$dir/report.html" || true
cut -d, -f1,2,5 "$dir/report.csv" | column -t -s, || cat "$dir/report.csv"
echo "report: $dir/report.html (exit status $status: 1 means findings above info)"
echo
echo "The declarations were filed today, after yesterday's connections. A staff list counts"
echo "from its filing only, so even Jeanne Martin, who is on it, is not_on_staff_list; a window"
echo "filed after the connection it covers is window_after_fact. Filed before the maintenance,"
echo "they would leave her connection only its missing report."
