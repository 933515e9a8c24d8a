#!/usr/bin/env bash
# Side-by-side on loopback: rsyslog (imptcp -> omfile, plain TCP, no fsync) and the vigie
# collector (durable acks, HMAC chain, fsync group commit), driven by the same load
# generator (benches/loadgen) with the same messages, in one run on one machine.
#
#   benches/compare.sh                    # about 4 minutes after the build (23:01 on 2026-11-24)
#   COUNT=500000 SUSTAIN_SECS=60 CONNS=4 benches/compare.sh
#   KEEP=1 benches/compare.sh             # keep the work directory (configs, logs, JSON)
#   RATIO_ROUNDS=5 benches/compare.sh     # the headline pair (rsyslog TCP, collector TLS)
#                                         # run 5 times in turns (default 3), median taken
#   ZERO_SEGMENTS=false benches/compare.sh
#                                         # the collector's journal reserves new segments
#                                         # without writing their zeroes (faster on a disk
#                                         # short of bandwidth; see README)
#   AB_A=old/collector AB_B=new/collector AB_ROUNDS=5 benches/compare.sh
#                                         # A/B of two collector builds: only the syslog/TLS
#                                         # run (3), A and B alternated AB_ROUNDS times;
#                                         # AB_PROTO=relp-tls or https for run 4 or 5 instead
#
# Needs: rsyslog with rsyslog-gnutls and rsyslog-relp (Debian packages; /usr/sbin/rsyslogd and
# its imptcp, imtcp + gtls, imrelp and omfile modules
# are used), curl, jq, awk. Everything listens on 127.0.0.1 on free ports, in its own
# work directory with its own config and pid file; the system's rsyslog is not touched.
#
# Runs (each daemon started fresh, so its peak RSS is the run's):
#   1. rsyslog    syslog/TCP  (octet-counted, COUNT messages, closed loop): imptcp, its
#                             fastest path; then over TLS (imtcp, gtls) and RELP over TLS
#                             (imrelp, window 1024), the collector's transports, for
#                             the same-transport ratios
#   2. collector  syslog/TCP  (same generator, same transport)
#   3. collector  syslog/TLS  (mutual TLS, the transport bastions use)
#   4. collector  RELP/TLS    (window 1024, closed loop: max acknowledged rate)
#   5. collector  HTTPS JSON  (batches of 500, closed loop)
#   5b. rsyslog syslog/TCP and collector syslog/TLS again, in turns, RATIO_ROUNDS - 1 times
#                             (default 2): the target's ratio is the median over these pairs
#                             and the pair of runs 1 and 3, one run of each saying little on
#                             a shared machine; these rows are left out of the table
#   6. collector  RELP/TLS    sustained SUSTAIN_SECS (default 90) at 50% of run 4's rate:
#                             ack latency, RSS sampled every second (growth check: a line
#                             fitted through the second half's samples, after warm-up, must
#                             not rise by more than 4 MiB or 5%; the growth from 10 s to the
#                             end is printed too)
#   7. collector  RELP/TLS    closed loop again with PostgreSQL replication on, then the
#                             time until PostgreSQL holds everything, and the CPU the
#                             collector and (when it runs on this machine) PostgreSQL used
#                             over that time, per event: only if the collector
#                             has --postgres-url and PostgreSQL answers at VIGIE_BENCH_PG
#                             (default host=127.0.0.1 port=5432 user=postgres; a throwaway
#                             database is created and dropped); otherwise skipped, with why
#   8. collector  RELP/TLS    open loop at REPL_RATE msg/s (default: 80% of run 7's end-to-end
#                             replication rate) for REPL_SECS (default 30) with replication
#                             on, the lag sampled every second: the ingest rate replication
#                             keeps up with on this machine (same conditions as run 7)
#
# Syslog over TCP/TLS has no acks: events/s is COUNT over the time from the first
# connection to the moment the daemon had taken the last message (rsyslog: its output
# file stopped growing and holds COUNT lines; collector: vigie_events_accepted_total
# reached COUNT and the collector closed every connection, which it does only once all
# it read is durable). RELP and HTTPS: acknowledged events over the time to the last ack. Daemon CPU is utime+stime from /proc/PID/stat over the same interval;
# peak RSS is VmHWM from /proc/PID/status. The machine is shared: expect 15-30% noise,
# compare ratios measured in the same run, not absolute figures across runs.
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
COUNT=${COUNT:-2000000}
CONNS=${CONNS:-4}
SUSTAIN_SECS=${SUSTAIN_SECS:-90}
RUN_SECS=${RUN_SECS:-40}         # time bound of each throughput run
REPL_SECS=${REPL_SECS:-30}       # length of the replication keeping-up run (8)
KEEP=${KEEP:-0}
SOURCE=loadgen.localdomain
WORK=$(mktemp -d "${TMPDIR:-/tmp}/vigie-compare.XXXXXX")
PIDS=()

cleanup() {
    for pid in "${PIDS[@]}"; do
        if kill -0 "$pid" 2>/dev/null; then
            kill -TERM "$pid" 2>/dev/null || true
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    if [[ -n ${PG_DB:-} ]]; then
        psql "$PG_SERVER dbname=postgres" -Atqc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true
    fi
    if [[ $KEEP == 1 ]]; then
        echo "work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

die() { echo "compare.sh: $*" >&2; exit 2; }
log() { echo "[$(date +%T)] $*" >&2; }

for tool in curl jq awk; do command -v "$tool" >/dev/null || die "$tool is needed"; done
RSYSLOGD=$(command -v rsyslogd || true)
[[ -z $RSYSLOGD && -x /usr/sbin/rsyslogd ]] && RSYSLOGD=/usr/sbin/rsyslogd
[[ -n $RSYSLOGD ]] || die "rsyslogd not found (apt-get install rsyslog)"

log "building the collector (release) and the load generator (bench profile)"
cargo build --release -q -p collector
COLLECTOR=$ROOT/target/release/collector
LOADGEN=$(cargo bench --bench loadgen --no-run --message-format=json 2>/dev/null |
    jq -r 'select(.reason == "compiler-artifact" and .target.name == "loadgen" and .executable != null) | .executable' |
    tail -1)
[[ -x $LOADGEN ]] || die "cannot find the loadgen executable"

free_port() { free_ports 1; }
# free_ports N: N distinct ports free now (all held open together while chosen, so that none
# comes twice); another program may still take one before it is bound: see start_collector.
free_ports() {
    python3 -c '
import socket, sys
held = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in held:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in held))' "$1" 2>/dev/null && return
    # Without python3: distinct ports drawn at random, one per block of a thousand.
    local ports=() i
    for i in $(seq "$1"); do ports+=("$((20000 + i * 1000 + RANDOM % 1000))"); done
    echo "${ports[*]}"
}
now() { date +%s.%N; }
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }   # 1/100 s
# pg_ticks: the CPU of a PostgreSQL server running on this machine, in 1/100 s: every live
# `postgres` process, plus what the postmasters reaped of backends that have exited
# (cutime + cstime). Empty when no server runs here (VIGIE_BENCH_PG elsewhere).
pg_ticks() {
    local pid pids
    pids=$(pgrep -x postgres) || return 0
    for pid in $pids; do
        [[ -r /proc/$pid/stat ]] && echo "$pid $(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null)"
    done | awk '{own[NR] = $13 + $14; reaped[NR] = $15 + $16; ppid[NR] = $3; server[$1] = 1}
        END {for (i = 1; i <= NR; i++) {t += own[i]; if (!(ppid[i] in server)) t += reaped[i]}
             if (NR) print t}'
}
pg_cpu() { :; }   # pg_ticks once the bench server is known to be this machine's
status_kb() { awk -v k="$2:" '$1 == k {print $2}' "/proc/$1/status"; }
# port_open PORT PID: 0 once PORT accepts connections, 1 if PID exited first, 2 after 15 s.
port_open() {
    for _ in $(seq 300); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
    done
    return 2
}
wait_port() {
    local port=$1 pid=$2 what=$3 status=0
    port_open "$port" "$pid" || status=$?
    case $status in
    0) ;;
    1) KEEP=1; die "$what exited at start (see $WORK)" ;;
    *) die "$what did not open port $port" ;;
    esac
}
stop() {
    local pid=$1
    kill -TERM "$pid" 2>/dev/null || return 0
    for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
}

TENANTS='"CHU-01", "CHU-02", "CHU-03", "CHU-04"'
LG_COMMON=(--connections "$CONNS" --seed 42 --tenants 4 --grace 15)

# --- the development PKI (collector dev-certs) -----------------------------------------
RUST_LOG=warn "$COLLECTOR" --data-dir "$WORK/pki-home" dev-certs --source "$SOURCE" >"$WORK/dev-certs.txt"
PKI=$WORK/pki-home/dev-pki
TLS_ARGS=(--ca "$PKI/ca.pem" --cert "$PKI/source.pem" --key "$PKI/source.key")

# --- rsyslog ---------------------------------------------------------------------------
# start_rsyslog MODE: tcp (imptcp, its fastest path), tls (imtcp with the gtls driver,
# client certificates checked against the development CA) or relp (imrelp over TLS, the
# same checks; it acknowledges a message once queued in memory, not on disk).
start_rsyslog() {
    local mode=$1 dir=$WORK/rsyslog input
    rm -rf "$dir"
    mkdir -p "$dir/work"
    RS_PORT=$(free_port)
    RS_OUT=$dir/out.log
    case $mode in
    tcp) input="module(load=\"imptcp\")
input(type=\"imptcp\" address=\"127.0.0.1\" port=\"$RS_PORT\" ruleset=\"bench\")" ;;
    tls) input="global(DefaultNetstreamDriver=\"gtls\" DefaultNetstreamDriverCAFile=\"$PKI/ca.pem\"
       DefaultNetstreamDriverCertFile=\"$PKI/server.pem\" DefaultNetstreamDriverKeyFile=\"$PKI/server.key\")
module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"x509/certvalid\")
input(type=\"imtcp\" address=\"127.0.0.1\" port=\"$RS_PORT\" ruleset=\"bench\")" ;;
    relp) input="module(load=\"imrelp\")
input(type=\"imrelp\" address=\"127.0.0.1\" port=\"$RS_PORT\" ruleset=\"bench\" maxDataSize=\"65536\"
      tls=\"on\" tls.caCert=\"$PKI/ca.pem\" tls.myCert=\"$PKI/server.pem\"
      tls.myPrivKey=\"$PKI/server.key\" tls.authMode=\"certvalid\")" ;;
    *) die "unknown rsyslog mode $mode" ;;
    esac
    cat >"$dir/rsyslog.conf" <<EOF
global(workDirectory="$dir/work" maxMessageSize="64k")
$input
ruleset(name="bench") {
  action(type="omfile" file="$RS_OUT")
}
EOF
    "$RSYSLOGD" -n -f "$dir/rsyslog.conf" -i "$dir/rsyslogd.pid" >"$dir/rsyslogd.log" 2>&1 &
    RS_PID=$!
    PIDS+=("$RS_PID")
    wait_port "$RS_PORT" "$RS_PID" rsyslogd
}

# Waits until rsyslog's output holds $1 lines (or stops growing); prints the time of the
# last growth.
drain_rsyslog() {
    local want=$1 last_size=-1 last_change size t
    last_change=$(now)
    while :; do
        size=$(stat -c %s "$RS_OUT" 2>/dev/null || echo 0)
        t=$(now)
        if [[ $size != "$last_size" ]]; then
            last_size=$size
            last_change=$t
        elif awk -v a="$t" -v b="$last_change" 'BEGIN {exit !(a - b > 2)}'; then
            break
        fi
        sleep 0.05
    done
    echo "$last_change"
}

# --- the collector -----------------------------------------------------------------------
# collector_config DIR: the collector's configuration, on the ports chosen.
collector_config() {
    local dir=$1
    cat <<EOF
data_dir = "$dir/journal"
shutdown_timeout_ms = 10000
[journal]
seal_interval_ms = 60000
zero_segments = ${ZERO_SEGMENTS:-true}
[tls]
cert_file = "$PKI/server.pem"
key_file = "$PKI/server.key"
client_ca_file = "$PKI/ca.pem"
[syslog_tls]
listen = ["127.0.0.1:$C_TLS"]
[relp_tls]
listen = ["127.0.0.1:$C_RELP"]
[https]
listen = ["127.0.0.1:$C_HTTPS"]
[syslog_tcp]
listen = ["127.0.0.1:$C_TCP"]
allow = [{ addr = "127.0.0.1", source = "$SOURCE" }]
[metrics]
listen = "127.0.0.1:$C_METRICS"
[[sources]]
name = "$SOURCE"
tenants = [$TENANTS]
profiles = ["teleport", "fortigate", "sshd", "openvpn", "guacamole", "acme-pam"]
[[generic_profiles]]
name = "acme-pam"
format = "kv"
match = { app_name = "acme-pam" }
fields = { account = "user", target = "dst", source_addr = "src" }
kind = { field = "event", values = { login = "session_start", logout = "session_end" } }
EOF
}

start_collector() {
    local dir=$WORK/collector
    rm -rf "$dir"
    mkdir -p "$dir"
    C_LOG=$WORK/$1.collector.log
    local attempt
    for attempt in 1 2 3; do
        read -r C_TLS C_RELP C_HTTPS C_TCP C_METRICS < <(free_ports 5)
        : >"$C_LOG"
        collector_config "$dir" >"$dir/collector.toml"
        if [[ -n ${VIGIE_POSTGRES_URL:-} ]]; then
            RUST_LOG=warn "$COLLECTOR" migrate --config "$dir/collector.toml" >>"$C_LOG" 2>&1 ||
                { KEEP=1; die "collector migrate failed: see $C_LOG"; }
        fi
        # Segment rolls are logged (debug, one line each) to tell a stall of the journal from
        # others.
        RUST_LOG=warn,store::journal::writer=debug "$COLLECTOR" run --config "$dir/collector.toml" >>"$C_LOG" 2>&1 &
        C_PID=$!
        PIDS+=("$C_PID")
        if port_open "$C_METRICS" "$C_PID" && port_open "$C_TCP" "$C_PID"; then
            return 0
        fi
        # Another program bound one of the ports between their choice and the collector's
        # start: choose again.
        if ! kill -0 "$C_PID" 2>/dev/null && grep -q "Address already in use" "$C_LOG" && ((attempt < 3)); then
            log "    a port was taken meanwhile ($(grep -m1 -o 'cannot listen on [0-9.:]*' "$C_LOG")): starting again"
            rm -rf "$dir/journal"
            continue
        fi
        KEEP=1
        die "the collector did not start (see $C_LOG)"
    done
}

metric_sum() {
    curl -sf "http://127.0.0.1:$C_METRICS/metrics" |
        awk -v n="$1" '$1 ~ "^"n"({|$)" {s += $NF} END {printf "%d\n", s}'
}

# Waits until the collector accepted $1 events (or stopped progressing for 5 s); prints
# the time it got there.
drain_collector() {
    local want=$1 got last=-1 last_change t
    last_change=$(now)
    while :; do
        got=$(metric_sum vigie_events_accepted_total || echo 0)
        t=$(now)
        if ((got >= want)); then
            echo "$t"
            return
        fi
        if [[ $got != "$last" ]]; then
            last=$got
            last_change=$t
        elif awk -v a="$t" -v b="$last_change" 'BEGIN {exit !(a - b > 5)}'; then
            echo "$last_change"
            return
        fi
        sleep 0.05
    done
}

# Waits (at most 120 s) until PostgreSQL holds everything the journal does; writes how
# long replication took from the start of the run to $WORK/$3.replication.
wait_replicated() {
    local want=$1 t0=$2 name=$3 lag connected t rows
    for _ in $(seq 2400); do
        lag=$(metric_sum vigie_replication_lag_entries)
        connected=$(metric_sum vigie_replication_connected)
        if ((lag == 0 && connected == 1)); then break; fi
        sleep 0.05
    done
    t=$(now)
    local c1 pg1
    c1=$(cpu_ticks "$C_PID")
    pg1=$(pg_cpu)
    rows=$(psql "$VIGIE_POSTGRES_URL" -Atqc "SELECT count(*) FROM entries" 2>/dev/null || echo "?")
    awk -v t="$t" -v t0="$t0" -v n="$want" -v lag="$lag" -v rows="$rows" \
        -v c="$((c1 - REPL_C0))" -v pg0="${REPL_PG0:-}" -v pg1="$pg1" 'BEGIN {
        printf "%d events replicated (%s rows in PostgreSQL, lag %s) %.1f s after the start = %.0f events/s end to end", \
            n, rows, lag, t - t0, n / (t - t0)
        printf "; over that time the collector used %.1f CPU s (%.1f us per event)", c / 100, c / 100 / n * 1e6
        if (pg0 != "" && pg1 != "")
            printf ", PostgreSQL %.1f CPU s (%.1f us per row)", (pg1 - pg0) / 100, (pg1 - pg0) / 100 / n * 1e6
        else
            printf ", PostgreSQL not measured (not a server of this machine)"
        printf "\n" }' >"$WORK/$name.replication"
    log "    replication: $(cat "$WORK/$name.replication")"
}

# sample EVERY FILE CMD…: while the collector runs, writes "TIME OUTPUT-OF-CMD" to FILE
# every EVERY seconds, in the background; stop_sampler ends it.
sample() {
    local every=$1 file=$2
    shift 2
    (
        while kill -0 "$C_PID" 2>/dev/null; do
            echo "$(date +%s.%N) $("$@")"
            sleep "$every"
        done
    ) >"$file" 2>/dev/null &
    SAMPLER=$!
    PIDS+=("$SAMPLER")
}
stop_sampler() {
    kill "$SAMPLER" 2>/dev/null || true
    wait "$SAMPLER" 2>/dev/null || true
}
lag_and_accepted() {
    echo "$(metric_sum vigie_replication_lag_entries) $(metric_sum vigie_events_accepted_total)"
}

# --- one measured run ----------------------------------------------------------------------
# run NAME DAEMON(rsyslog|collector) PROTOCOL PORT [loadgen args…]
# Appends a row to $WORK/rows.tsv:
# name events ev_per_s cpu_s cpu_s_per_M hwm_mib gen_cpu_s p50 p99 p999 lost
run() {
    local name=$1 daemon=$2 proto=$3 port=$4
    shift 4
    local pid t0 t1 c0 c1 json=$WORK/$name.json delivered lost
    if [[ $daemon == rsyslog ]]; then
        case $proto in syslog-tcp) start_rsyslog tcp ;; syslog-tls) start_rsyslog tls ;; *) start_rsyslog relp ;; esac
        pid=$RS_PID
    else
        start_collector "$name"
        pid=$C_PID
    fi
    [[ $port == rsyslog ]] && port=$RS_PORT
    [[ $port == tcp ]] && port=$C_TCP
    [[ $port == tls ]] && port=$C_TLS
    [[ $port == relp ]] && port=$C_RELP
    [[ $port == https ]] && port=$C_HTTPS
    local tls=()
    [[ $proto != syslog-tcp ]] && tls=("${TLS_ARGS[@]}")
    log "run $name: $daemon, $proto, $*"
    c0=$(cpu_ticks "$pid")
    REPL_C0=$c0 REPL_PG0=$(pg_cpu)
    t0=$(now)
    "$LOADGEN" --protocol "$proto" --target "127.0.0.1:$port" "${tls[@]}" "${LG_COMMON[@]}" \
        --json "$json" "$@" >"$WORK/$name.txt" 2>"$WORK/$name.err" || true
    [[ -s $json ]] || die "the load generator failed in run $name: $(cat "$WORK/$name.err")"
    local sent acked
    sent=$(jq -r .sent "$json")
    acked=$(jq -r .acked "$json")
    if [[ $(jq -r .acks "$json") == true ]]; then
        t1=$(awk -v a="$t0" -v e="$(jq -r .elapsed_s "$json")" 'BEGIN {printf "%.6f", a + e}')
        delivered=$acked
    elif [[ $daemon == rsyslog ]]; then
        t1=$(drain_rsyslog "$sent")
        delivered=$(wc -l <"$RS_OUT")
    else
        # The collector closes a syslog connection only once all it read is durable, and
        # the generator returns once every connection is closed: the later of that and
        # the counter reaching COUNT.
        t1=$(drain_collector "$sent")
        t1=$(awk -v a="$t1" -v b="$t0" -v e="$(jq -r .elapsed_s "$json")" 'BEGIN {printf "%.6f", (a > b + e ? a : b + e)}')
        delivered=$(metric_sum vigie_events_accepted_total)
    fi
    c1=$(cpu_ticks "$pid")
    if [[ $daemon == collector ]]; then
        log "    collector: $(metric_sum vigie_events_unmapped_total) of $delivered events unmapped by the profiles, $(metric_sum vigie_events_rejected_total) rejected"
    fi
    if [[ $daemon == collector && -n ${VIGIE_POSTGRES_URL:-} ]]; then
        wait_replicated "$delivered" "$t0" "$name"
    fi
    local hwm
    hwm=$(status_kb "$pid" VmHWM)
    lost=$((sent - delivered))
    stop "$pid"
    if [[ $daemon == rsyslog ]]; then
        # rsyslog never syncs its file. Removed now, its dirty pages are dropped; left, the
        # kernel writes them back during the collector's later runs, where that stalled the
        # journal's fdatasync for up to a second (p99 over 1 s in the sustained run, on a
        # disk flushing at about 400 MB/s).
        rm -f "$RS_OUT"
    fi
    awk -v name="$name" -v n="$delivered" -v t0="$t0" -v t1="$t1" -v c0="$c0" -v c1="$c1" \
        -v hwm="$hwm" -v lost="$lost" -v gen="$(jq -r .generator_cpu_s "$json")" \
        -v p50="$(jq -r .latency_ms.p50 "$json")" -v p99="$(jq -r .latency_ms.p99 "$json")" \
        -v p999="$(jq -r .latency_ms.p999 "$json")" -v acks="$(jq -r .acks "$json")" '
        BEGIN {
            d = t1 - t0; cpu = (c1 - c0) / 100
            if (acks != "true") { p50 = "-"; p99 = "-"; p999 = "-" }
            printf "%s\t%d\t%.0f\t%.2f\t%.2f\t%.1f\t%.2f\t%s\t%s\t%s\t%d\t%.2f\n",
                name, n, n / d, cpu, (n > 0 ? cpu / n * 1e6 : 0), hwm / 1024, gen, p50, p99, p999, lost, cpu / d
        }' >>"$WORK/rows.tsv"
    tail -1 "$WORK/rows.tsv" | awk -F'\t' '{printf "    %s events/s, %s CPU s/M events, peak RSS %s MiB, lost %s\n", $3, $5, $6, $11}' >&2
}

: >"$WORK/rows.tsv"

# --- A/B of two builds ----------------------------------------------------------------------
# The machine drifts within minutes: alternating the two builds, several rounds, is what
# makes their difference readable.
if [[ -n ${AB_A:-}${AB_B:-} ]]; then
    [[ -x ${AB_A:-} && -x ${AB_B:-} ]] || die "AB_A and AB_B must both name collector executables"
    AB_PROTO=${AB_PROTO:-syslog-tls}
    case $AB_PROTO in
    syslog-tls) ab_run=(syslog-tls tls) ;;
    relp-tls) ab_run=(relp-tls relp --window 1024) ;;
    https) ab_run=(https https --batch 500) ;;
    *) die "AB_PROTO is syslog-tls, relp-tls or https, not $AB_PROTO" ;;
    esac
    for round in $(seq "${AB_ROUNDS:-5}"); do
        for side in A B; do
            bin=AB_$side
            COLLECTOR=${!bin}
            run "ab-$side-$round" collector "${ab_run[@]:0:2}" --count "$COUNT" --duration "$RUN_SECS" "${ab_run[@]:2}"
        done
    done
    echo
    echo "== A/B over $AB_PROTO, $COUNT events, $CONNS connections, ${AB_ROUNDS:-5} rounds, $(date -u +%FT%TZ)"
    echo "   A: $AB_A"
    echo "   B: $AB_B"
    awk -F'\t' '
        { side = substr($1, 4, 1); n[side]++; cpu[side, n[side]] = $5; rate[side, n[side]] = $3 }
        function median(arr, s, k,    i, j, t, v) {
            for (i = 1; i <= k; i++) v[i] = arr[s, i]
            for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
            return (k % 2 ? v[(k + 1) / 2] : (v[k / 2] + v[k / 2 + 1]) / 2)
        }
        END {
            for (s = 0; s < 2; s++) {
                side = (s == 0 ? "A" : "B"); line = ""
                for (i = 1; i <= n[side]; i++) line = line " " cpu[side, i]
                printf "   %s: CPU s per million events%s (median %.2f); events/s median %.0f\n",
                    side, line, median(cpu, side, n[side]), median(rate, side, n[side])
            }
            printf "   B/A, medians: CPU per event %.3f\n", median(cpu, "B", n["B"]) / median(cpu, "A", n["A"])
        }' "$WORK/rows.tsv"
    exit 0
fi

run rsyslog-tcp rsyslog syslog-tcp rsyslog --count "$COUNT" --duration "$RUN_SECS"
run rsyslog-tls rsyslog syslog-tls rsyslog --count "$COUNT" --duration "$RUN_SECS"
run rsyslog-relp rsyslog relp-tls rsyslog --count "$COUNT" --duration "$RUN_SECS" --window 1024
run collector-tcp collector syslog-tcp tcp --count "$COUNT" --duration "$RUN_SECS"
run collector-tls collector syslog-tls tls --count "$COUNT" --duration "$RUN_SECS"
run collector-relp collector relp-tls relp --count "$COUNT" --duration "$RUN_SECS" --window 1024
run collector-https collector https https --count "$COUNT" --duration "$RUN_SECS" --batch 500

# --- the target's pair again, in turns ----------------------------------------------------
for round in $(seq 2 "${RATIO_ROUNDS:-3}"); do
    run "pair-$round-rsyslog-tcp" rsyslog syslog-tcp rsyslog --count "$COUNT" --duration "$RUN_SECS"
    run "pair-$round-collector-tls" collector syslog-tls tls --count "$COUNT" --duration "$RUN_SECS"
done

# --- sustained run at 50% of the RELP maximum, RSS sampled ----------------------------------
relp_max=$(awk -F'\t' '$1 == "collector-relp" {print $3}' "$WORK/rows.tsv")
rate=$(awk -v r="$relp_max" 'BEGIN {printf "%.0f", r / 2}')
if ((rate < 100)); then rate=100; fi
start_collector sustained
sample 1 "$WORK/sustained-rss.txt" status_kb "$C_PID" VmRSS
log "run sustained: collector, relp-tls, $rate msg/s for $SUSTAIN_SECS s"
c0=$(cpu_ticks "$C_PID")
"$LOADGEN" --protocol relp-tls --target "127.0.0.1:$C_RELP" "${TLS_ARGS[@]}" "${LG_COMMON[@]}" \
    --rate "$rate" --duration "$SUSTAIN_SECS" --window 1024 --progress \
    --json "$WORK/sustained.json" >"$WORK/sustained.txt" 2>"$WORK/sustained.err" || true
[[ -s $WORK/sustained.json ]] || die "the load generator failed in the sustained run: $(cat "$WORK/sustained.err")"
c1=$(cpu_ticks "$C_PID")
s_hwm=$(status_kb "$C_PID" VmHWM)
# The collector's own histograms: a stall in the generator's latencies that they do not
# show happened outside the journal.
curl -sf "http://127.0.0.1:$C_METRICS/metrics" >"$WORK/sustained.metrics" || true
stop "$C_PID"
stop_sampler

# --- PostgreSQL replication -----------------------------------------------------------------
# With `--postgres-url` in the collector: RELP closed loop again, replication on, into a
# throwaway database of the server VIGIE_BENCH_PG (default: the local test server).
PG_SERVER=${VIGIE_BENCH_PG:-host=127.0.0.1 port=5432 user=postgres}
pg_note=
if ! "$COLLECTOR" run --help | grep -q -- '--postgres-url'; then
    pg_note="skipped: the collector has no PostgreSQL URL option (no --postgres-url in \`collector run --help\`)"
elif ! command -v psql >/dev/null; then
    pg_note="skipped: psql is not installed (needed to create the throwaway database)"
elif ! psql "$PG_SERVER dbname=postgres" -Atqc 'SELECT 1' >/dev/null 2>&1; then
    pg_note="skipped: PostgreSQL unreachable at '$PG_SERVER' (set VIGIE_BENCH_PG)"
else
    # PostgreSQL's CPU is read from /proc when the server is this machine's.
    if [[ $PG_SERVER =~ host=((127\.0\.0\.1|localhost|::1)([\ ]|$)|/) || ! $PG_SERVER =~ host= ]]; then
        pg_cpu() { pg_ticks; }
    fi
    PG_DB=vigie_bench_$$_$RANDOM
    psql "$PG_SERVER dbname=postgres" -Atqc "CREATE DATABASE $PG_DB" >/dev/null
    drop_db() { psql "$PG_SERVER dbname=postgres" -Atqc "DROP DATABASE IF EXISTS $PG_DB WITH (FORCE)" >/dev/null 2>&1 || true; }
    export VIGIE_POSTGRES_URL="$PG_SERVER dbname=$PG_DB"
    run collector-relp-pg collector relp-tls relp --count "$COUNT" --duration "$RUN_SECS" --window 1024 || { drop_db; exit 2; }
    drop_db
    pg_note="RELP/TLS closed loop with replication on (row collector-relp-pg): $(cat "$WORK/collector-relp-pg.replication")"

    # 8. Open loop at a rate replication should sustain, lag sampled every second.
    repl_e2e=$(awk '{for (i = 1; i < NF; i++) if ($(i + 1) == "events/s") r = $i} END {printf "%.0f", r}' "$WORK/collector-relp-pg.replication")
    REPL_RATE=${REPL_RATE:-$(awk -v r="$repl_e2e" 'BEGIN {printf "%.0f", (r > 0 ? r * 0.8 : 1000)}')}
    psql "$PG_SERVER dbname=postgres" -Atqc "CREATE DATABASE $PG_DB" >/dev/null
    start_collector replication-sustained
    sample 1 "$WORK/replication-lag.txt" lag_and_accepted
    log "run replication-sustained: collector, relp-tls, $REPL_RATE msg/s for $REPL_SECS s, replication on"
    REPL_C0=$(cpu_ticks "$C_PID") REPL_PG0=$(pg_cpu)
    t0=$(now)
    "$LOADGEN" --protocol relp-tls --target "127.0.0.1:$C_RELP" "${TLS_ARGS[@]}" "${LG_COMMON[@]}" \
        --rate "$REPL_RATE" --duration "$REPL_SECS" --window 1024 \
        --json "$WORK/replication-sustained.json" >"$WORK/replication-sustained.txt" 2>"$WORK/replication-sustained.err" || true
    t_end=$(now)
    wait_replicated "$(metric_sum vigie_events_accepted_total)" "$t0" replication-drain
    t_drained=$(now)
    stop "$C_PID"
    stop_sampler
    unset VIGIE_POSTGRES_URL
    drop_db
    repl_note=$(awk -v rate="$REPL_RATE" -v secs="$REPL_SECS" -v t_end="$t_end" -v t_drained="$t_drained" \
        -v acked="$(jq -r .acked "$WORK/replication-sustained.json")" -v sent="$(jq -r .sent "$WORK/replication-sustained.json")" '
        NF == 3 { n++; lag[n] = $2; if ($2 > max) max = $2; if ($1 <= t_end) last = $2 }
        END {
            half = int(n / 2); if (half < 1) half = 1
            printf "%d msg/s for %d s (%d sent, %d acked): lag max %d entries, %d when the load stopped (%.2f s of ingest), drained %.1f s later; lag at mid-run %d",
                rate, secs, sent, acked, max, last, (rate > 0 ? last / rate : 0), t_drained - t_end, lag[half]
        }' "$WORK/replication-lag.txt")
fi

# --- the table -------------------------------------------------------------------------------
echo
echo "== vigie collector vs rsyslog, loopback, $(nproc) CPUs (shared: expect 15-30% noise), $(date -u +%FT%TZ)"
echo "   messages: $(jq -r '"\(.message_bytes.min)-\(.message_bytes.max) bytes (mean \(.message_bytes.mean | floor))"' "$WORK/rsyslog-tcp.json"), $CONNS connections, seed 42"
echo "   rsyslog $("$RSYSLOGD" -v | head -1 | awk '{print $2}'): imptcp / imtcp+gtls / imrelp+TLS -> omfile (no fsync; RELP acked once queued in memory)."
echo "   collector: every event parsed, mapped, HMAC-chained and fsync'ed (group commit) before its ack; journal zero_segments = ${ZERO_SEGMENTS:-true}."
echo
printf '%-17s %8s %9s %7s %6s %10s %8s %7s %7s %7s %8s %5s\n' \
    run events events/s "cpu s" cores "cpu s/M ev" "RSS MiB" "gen cpu" "p50 ms" "p99 ms" "p999 ms" lost
awk -F'\t' '$1 !~ /^pair-/ {printf "%-17s %8s %9s %7s %6s %10s %8s %7s %7s %7s %8s %5s\n", $1, $2, $3, $4, $12, $5, $6, $7, $8, $9, $10, $11}' "$WORK/rows.tsv"
echo "(cpu s, cores: the daemon's; gen cpu: the load generator's own CPU seconds; latencies: acks, RELP and HTTPS only)"
echo
awk -F'\t' '
    { rate[$1] = $3; cpu[$1] = $5; rss[$1] = $6 }
    END {
        printf "ratio collector/rsyslog (same run), events/s:  tcp %.2f  tls %.2f  relp %.2f  https %.2f\n",
            rate["collector-tcp"] / rate["rsyslog-tcp"], rate["collector-tls"] / rate["rsyslog-tcp"],
            rate["collector-relp"] / rate["rsyslog-tcp"], rate["collector-https"] / rate["rsyslog-tcp"]
        printf "ratio collector/rsyslog (same run), CPU s per million events:  tcp %.2f  tls %.2f  relp %.2f  https %.2f\n",
            cpu["collector-tcp"] / cpu["rsyslog-tcp"], cpu["collector-tls"] / cpu["rsyslog-tcp"],
            cpu["collector-relp"] / cpu["rsyslog-tcp"], cpu["collector-https"] / cpu["rsyslog-tcp"]
        printf "same transport (collector durable and chained; rsyslog no fsync, RELP acked in memory), events/s:  tls %.2f  relp %.2f\n",
            rate["collector-tls"] / rate["rsyslog-tls"], rate["collector-relp"] / rate["rsyslog-relp"]
    }' "$WORK/rows.tsv"
echo
S=$WORK/sustained.json
echo "sustained: RELP/TLS at $rate msg/s (50% of the RELP maximum) for $SUSTAIN_SECS s:"
jq -r '"  sent \(.sent), acked \(.acked), refused \(.refused), unanswered \(.unanswered), errors \(.errors); acked \(.acked_per_s | floor)/s"' "$S"
jq -r '"  ack latency p50 \(.latency_ms.p50) ms, p99 \(.latency_ms.p99) ms, p99.9 \(.latency_ms.p999) ms, max \(.latency_ms.max) ms (target: p99 < 20 ms)"' "$S"
# The second with the fewest acks (the first and the last, partial, left out): where a stall
# shows, and when.
awk '$1 == "loadgen:" && $3 == "s" {n++; t[n] = $2; a[n] = $7 + 0}
    END {
        for (i = 2; i < n; i++) if (min == "" || a[i] < min) { min = a[i]; at = t[i] }
        if (min != "") printf "  fewest acks in one second: %d, in second %d of the run\n", min, at
    }' "$WORK/sustained.err"
sed 's/\x1b\[[0-9;]*m//g' "$WORK/sustained.collector.log" | awk '/journal segment opened/ {
        n++
        for (i = 1; i <= NF; i++) {
            split($i, kv, "=")
            if (kv[1] == "roll_ms" && kv[2] + 0 > roll) roll = kv[2] + 0
            if (kv[1] == "spare_wait_ms" && kv[2] + 0 > wait) wait = kv[2] + 0
        }
    }
    END { printf "  journal segment rolls: %d, longest %.1f ms (longest wait for the spare %.1f ms)\n", n, roll, wait }'
# For each histogram, the smallest bucket that holds every observation: the slowest one is
# within it.
awk '
    function bound(name, le, count) {
        if (!(name in total)) return
        if (count == total[name] && (!(name in at) || le + 0 < at[name] + 0)) at[name] = le
    }
    $1 ~ /_count$/ { n = $1; sub(/_count$/, "", n); total[n] = $2 }
    { lines[NR] = $0 }
    END {
        for (i = 1; i <= NR; i++) {
            split(lines[i], f, " ")
            if (f[1] !~ /_bucket\{le="/ || f[1] ~ /\+Inf/) continue
            n = f[1]; sub(/_bucket.*/, "", n)
            le = f[1]; sub(/.*le="/, "", le); sub(/".*/, "", le)
            bound(n, le, f[2])
        }
        a = "vigie_ack_latency_seconds"; s = "vigie_journal_fsync_seconds"
        if ((a in total) && (s in total))
            printf "  collector side: %d batches acked, the slowest within %s ms; %d fsyncs, the slowest within %s ms\n",
                total[a], (a in at ? at[a] * 1000 : "> 5000"), total[s], (s in at ? at[s] * 1000 : "> 1000")
    }' "$WORK/sustained.metrics"
awk -v c0="$c0" -v c1="$c1" -v n="$(jq -r .acked "$S")" -v hwm="$s_hwm" -v gen="$(jq -r .generator_cpu_s "$S")" \
    'BEGIN {printf "  collector CPU %.2f s (%.2f s per million events), peak RSS %.1f MiB (target < 256 MiB), generator CPU %.2f s\n", (c1-c0)/100, (n > 0 ? (c1-c0)/100/n*1e6 : 0), hwm/1024, gen}'
# RSS growth (KiB): from the sample 10 s into the run to the last one, and over the
# second half of the run by a least-squares line through its samples (a warm-up that levels
# off grows in the first half only; a leak grows in both; the line is not fooled by one
# sample's noise, a few MiB either way). Samples are taken every second: the allocator
# moves RSS by a few MiB from one sample to the next, and a line through the 9 samples of
# 5-s sampling rose by more than the threshold on that noise alone in about one run in
# eight (simulated) to one in five (5 of 23 runs of this script); through 45, about one in
# forty (simulated). Prints: samples, growth from 10 s, fitted growth over the second half,
# mean RSS of the second half.
rss_growth() {
    awk 'NF == 2 {t[++n] = $1; r[n] = $2}
        END {
            if (n < 4) { print n, 0, 0, 0; exit }
            ten = 1
            while (ten < n && t[ten] - t[1] < 10) ten++
            m = int((n + 1) / 2)
            for (i = m; i <= n; i++) { st += t[i]; sr += r[i]; k++ }
            st /= k; sr /= k
            for (i = m; i <= n; i++) { num += (t[i] - st) * (r[i] - sr); den += (t[i] - st) ^ 2 }
            slope = (den > 0 ? num / den : 0)
            printf "%d %.0f %.0f %.0f\n", n, r[n] - r[ten], slope * (t[n] - t[m]), sr
        }' "$1"
}
read -r rss_n rss_from10 rss_half rss_mean < <(rss_growth "$WORK/sustained-rss.txt")
awk 'NF == 2 {r[++n] = $2}
    END {
        if (n < 3) { print "  RSS samples: too few"; exit }
        line = "  RSS every 5 s (MiB):"
        for (i = 1; i <= n; i += 5) line = line sprintf(" %.0f", r[i] / 1024)
        print line
    }' "$WORK/sustained-rss.txt"
awk -v a="$rss_from10" -v h="$rss_half" -v m="$rss_mean" 'BEGIN {
    printf "  RSS growth from 10 s to the end: %+.1f MiB; over the second half (fitted line): %+.1f MiB (%+.1f%% of its mean)\n", a / 1024, h / 1024, (m > 0 ? h / m * 100 : 0)
}'
echo
echo "PostgreSQL replication run: $pg_note"
[[ -n ${repl_note:-} ]] && echo "replication keeping up (open loop, replication on): $repl_note"
echo
echo "targets:"
# Pair 1 is the table's rows; the others ran in turns after it. The median of the pairs'
# ratios decides.
awk -F'\t' '
    $1 == "rsyslog-tcp" {r[1] = $3} $1 == "collector-tls" {c[1] = $3}
    $1 ~ /^pair-[0-9]+-rsyslog-tcp$/ {split($1, p, "-"); r[p[2]] = $3}
    $1 ~ /^pair-[0-9]+-collector-tls$/ {split($1, p, "-"); c[p[2]] = $3}
    END {
        for (i = 1; (i in r) && (i in c); i++) { n++; q[n] = c[i] / r[i]; line = line sprintf(" %.2f", q[n]) }
        for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (q[j] < q[i]) { t = q[i]; q[i] = q[j]; q[j] = t }
        median = (n % 2 ? q[(n + 1) / 2] : (q[n / 2] + q[n / 2 + 1]) / 2)
        printf "  %s collector syslog/TLS, durable + chained, vs rsyslog TCP -> file: %.0f vs %.0f events/s = %.2f in the first pair;\n", (median >= 1 ? "PASS" : "FAIL"), c[1], r[1], c[1] / r[1]
        printf "       %d pairs in turns:%s; median %.2f (target >= 1)\n", n, line, median
    }' "$WORK/rows.tsv"
jq -r 'if .latency_ms.p99 < 20 then "  PASS p99 ack latency at 50% of max: \(.latency_ms.p99) ms < 20 ms"
       else "  FAIL p99 ack latency at 50% of max: \(.latency_ms.p99) ms >= 20 ms" end' "$S"
{ awk -F'\t' '$1 ~ /^collector/ {print $1, $6}' "$WORK/rows.tsv"; echo "sustained $(awk -v k="$s_hwm" 'BEGIN {printf "%.1f", k / 1024}')"; } |
    awk '{ if ($2 >= 256) { bad = bad sprintf(" %s (%s MiB)", $1, $2) } if ($2 > max) { max = $2; at = $1 } }
        END { if (bad == "") printf "  PASS peak RSS under 256 MiB in every collector run (largest %s MiB, %s)\n", max, at
              else printf "  FAIL peak RSS over 256 MiB in:%s\n", bad }'
awk -v n="$rss_n" -v a="$rss_from10" -v h="$rss_half" -v m="$rss_mean" 'BEGIN {
    if (n < 4) { print "  ---- RSS growth: too few samples"; exit }
    # Judged on the second half of the run, once warm-up (buffers and allocator caches
    # reaching their working size) is over: a leak keeps growing there.
    if (h <= 4096 && h <= m / 20) printf "  PASS no RSS growth over the second half of the sustained run (%+.1f MiB, fitted; %+.1f MiB from 10 s to the end)\n", h / 1024, a / 1024
    else printf "  FAIL RSS grew by %.1f MiB over the second half of the sustained run (fitted; %+.1f MiB from 10 s to the end)\n", h / 1024, a / 1024
}'
if [[ -n ${repl_e2e:-} ]]; then
    awk -v e2e="$repl_e2e" -v sustained="$rate" -v repl="$REPL_RATE" -v note="${repl_note:-}" 'BEGIN {
        verdict = (e2e >= sustained ? "PASS" : "FAIL")
        printf "  %s replication at the sustained rate: %.0f events/s end to end vs %.0f msg/s sustained (run 8 at %.0f msg/s: see above)\n", verdict, e2e, sustained, repl
    }'
fi
