#!/bin/sh
# watcher_cpu.sh: how much CPU the watcher uses, as % of one core, while it
# polls an idle target (bench/idle_trackers) with 1, 256 and 1024 trackers.
#
# Usage: watcher_cpu.sh [BUILDDIR]            (`make bench` runs it)
#   PERPETUO_WATCHER       the watcher (default BUILDDIR/libperpetuo/watcher/perpetuo)
#   WATCHER_CPU_SECONDS    how long each row measures (default 10)
#   WATCHER_CPU_POLL       the poll interval in seconds (default 0.05, the
#                          watcher's default)
#   WATCHER_CPU_TRACKERS   tracker counts, one row each (default "1 256 1024")
#
# For each row: start idle_trackers N, attach `perpetuo --poll-interval P
# watch PID`, wait until it says it is watching, then read the CPU time of
# both processes, sleep, and read it again. Two sources of CPU time:
#   stat   utime+stime from /proc/PID/stat, in clock ticks (1/CLK_TCK s, so
#          over 10 s one tick is 0.1% of a core: too coarse for the goal);
#   sched  se.sum_exec_runtime from /proc/PID/task/*/sched (the scheduler's
#          own nanosecond count), when the kernel provides it.
# The verdict uses `sched` when available, `stat` otherwise.
# Goal: <= 0.1% of one core with 256 trackers at the default 0.05 s poll.
set -eu

builddir=${1:-.}
watcher=${PERPETUO_WATCHER:-$builddir/libperpetuo/watcher/perpetuo}
idle=$builddir/bench/idle_trackers
seconds=${WATCHER_CPU_SECONDS:-10}
poll=${WATCHER_CPU_POLL:-0.05}
counts=${WATCHER_CPU_TRACKERS:-1 256 1024}
goal_trackers=256
goal_pct=0.1

for f in "$watcher" "$idle"; do
  if [ ! -x "$f" ]; then
    echo "watcher_cpu: $f is missing (make bench builds it)" >&2
    exit 1
  fi
done

hz=$(getconf CLK_TCK)
tmp=$(mktemp -d)
target_pid=
watcher_pid=
cleanup() {
  [ -n "$watcher_pid" ] && kill "$watcher_pid" 2>/dev/null || :
  [ -n "$target_pid" ] && kill "$target_pid" 2>/dev/null || :
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# utime+stime of a process, in clock ticks. The command name, in
# parentheses, may hold spaces: count the fields after the last ')'.
stat_ticks() {
  sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}

# The scheduler's CPU time of all the process's threads, in ns; empty if the
# kernel has no /proc/PID/task/*/sched.
sched_ns() {
  cat /proc/"$1"/task/*/sched 2>/dev/null |
    awk '$1 == "se.sum_exec_runtime" { ms += $3; n++ }
         END { if (n) printf "%.0f\n", ms * 1e6 }'
}

now_s() { date +%s.%N; }

# Waits up to 10 s for a file to contain a pattern.
wait_for() {
  i=0
  until grep -q "$2" "$1" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 200 ]; then
      echo "watcher_cpu: timed out waiting for '$2' in $1:" >&2
      cat "$1" >&2
      exit 1
    fi
    sleep 0.05
  done
}

echo "watcher CPU use, poll interval $poll s, $seconds s per row, % of one core"
echo "(stat: utime+stime, 1/$hz s ticks; sched: the scheduler's ns count)"
printf '  %8s  %13s %13s %11s  %13s %13s\n' trackers "watcher stat" \
  "watcher sched" "us per poll" "target stat" "target sched"

verdict=
for n in $counts; do
  "$idle" "$n" >"$tmp/idle.out" &
  target_pid=$!
  wait_for "$tmp/idle.out" '^[0-9]'
  "$watcher" --poll-interval "$poll" watch "$target_pid" 2>"$tmp/watcher.log" &
  watcher_pid=$!
  wait_for "$tmp/watcher.log" 'watching pid'
  sleep 0.5 # let it settle into its poll rhythm

  t0=$(now_s)
  w_ticks0=$(stat_ticks "$watcher_pid")
  w_ns0=$(sched_ns "$watcher_pid")
  t_ticks0=$(stat_ticks "$target_pid")
  t_ns0=$(sched_ns "$target_pid")
  sleep "$seconds"
  t1=$(now_s)
  w_ticks1=$(stat_ticks "$watcher_pid")
  w_ns1=$(sched_ns "$watcher_pid")
  t_ticks1=$(stat_ticks "$target_pid")
  t_ns1=$(sched_ns "$target_pid")

  if ! kill -0 "$watcher_pid" 2>/dev/null; then
    echo "watcher_cpu: the watcher exited early:" >&2
    cat "$tmp/watcher.log" >&2
    exit 1
  fi
  kill "$watcher_pid"
  wait "$watcher_pid" 2>/dev/null || :
  watcher_pid=
  kill "$target_pid"
  wait "$target_pid" 2>/dev/null || :
  target_pid=
  if grep -q 'stall [0-9]' "$tmp/watcher.log"; then
    echo "watcher_cpu: note: the watcher reported a stall of the idle target:" >&2
    grep 'stall [0-9]' "$tmp/watcher.log" >&2
  fi

  line=$(awk -v t0="$t0" -v t1="$t1" -v hz="$hz" -v poll="$poll" \
    -v n="$n" -v goal_n="$goal_trackers" -v goal="$goal_pct" \
    -v wk0="$w_ticks0" -v wk1="$w_ticks1" -v wn0="$w_ns0" -v wn1="$w_ns1" \
    -v tk0="$t_ticks0" -v tk1="$t_ticks1" -v tn0="$t_ns0" -v tn1="$t_ns1" '
    function pct_ticks(a, b) { return sprintf("%12.3f%%", (b - a) / hz / (t1 - t0) * 100) }
    function pct_ns(a, b) {
      if (a == "" || b == "") return sprintf("%13s", "n/a")
      return sprintf("%12.4f%%", (b - a) / 1e9 / (t1 - t0) * 100)
    }
    BEGIN {
      polls = (t1 - t0) / poll
      if (wn0 != "" && wn1 != "") {
        per_poll = sprintf("%11.1f", (wn1 - wn0) / 1e3 / polls)
        pct = (wn1 - wn0) / 1e9 / (t1 - t0) * 100; source = "sched"
      } else {
        per_poll = sprintf("%11.1f", (wk1 - wk0) / hz * 1e6 / polls)
        pct = (wk1 - wk0) / hz / (t1 - t0) * 100; source = "stat"
      }
      printf "  %8d  %s %s %s  %s %s\n", n, pct_ticks(wk0, wk1), pct_ns(wn0, wn1),
        per_poll, pct_ticks(tk0, tk1), pct_ns(tn0, tn1)
      if (n == goal_n)
        printf "VERDICT %s %.4f %s\n", (pct <= goal ? "met" : "MISSED"), pct, source
    }')
  echo "$line" | grep -v '^VERDICT' || :
  v=$(echo "$line" | sed -n 's/^VERDICT //p')
  [ -n "$v" ] && verdict=$v
done

if [ -n "$verdict" ]; then
  set -- $verdict
  echo "goal: watcher <= $goal_pct% of one core with $goal_trackers trackers" \
    "at a $poll s poll: $1 ($2% by $3)"
fi
