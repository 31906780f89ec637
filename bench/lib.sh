# SPDX-License-Identifier: MIT
# Shell functions the benchmark scripts share; sourced, not run.
# The callers keep their servers' PIDs in the associative array `pid`, their
# temporary directory in `tmp` and the directory for its files in `log_dir`.

isnum() { case $1 in ''|*[!0-9]*) return 1 ;; esac; }

shapes_check() {    # SCRIPT MIN_CONNS SHAPES...: each CONNSxSTREAMS, CONNS >= MIN_CONNS; exit 2 if not
    local script=$1 min=$2 shape
    shift 2
    for shape in "$@"; do
        case $shape in
        *x*) isnum "${shape%x*}" && isnum "${shape#*x}" && [ "${shape%x*}" -ge "$min" ] &&
             [ "${shape#*x}" -ge 1 ] && continue ;;
        esac
        echo "$script: bad shape \"$shape\" (want CONNSxSTREAMS, CONNS at least $min)" >&2
        exit 2
    done
}

wait_file() {    # FILE PID: up to 20 s for the server to write its ready file
    local i=0
    while [ ! -s "$1" ] && [ $i -lt 400 ]; do
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.05
        i=$((i + 1))
    done
    [ -s "$1" ]
}

cpu_split() {    # SERVER: "utime stime" in ticks (fields 14 and 15; counted after the ")" of comm)
    sed 's/^.*) //' "/proc/${pid[$1]}/stat" | awk '{print $12, $13}'
}

cpu() {    # SERVER: utime+stime in ticks
    cpu_split "$1" | awk '{print $1 + $2}'
}

gx_load_build() {    # SCRIPT: builds bench/gx_load.c into $tmp unless $gx_load is set; exit 1 if it fails
    [ -z "$gx_load" ] || return 0
    gx_load=$tmp/gx_load
    # shellcheck disable=SC2046
    cc -O2 -Wall -Wextra -o "$gx_load" "$src/bench/gx_load.c" \
        $(pkg-config --cflags --libs libnghttp2 libevent) -lpthread ||
        { echo "$1: building gx_load failed (bench/deps.sh?)" >&2; exit 1; }
}

say() {    # prints a line and keeps it in $tmp/output.txt (for --log-dir)
    echo "$*" | tee -a "$tmp/output.txt"
}

tmp_done() {    # at exit: the files of $tmp into $log_dir when one was given, then $tmp goes
    if [ -n "$log_dir" ]; then
        mkdir -p "$log_dir"
        (cd "$tmp" && find . -maxdepth 1 -type f -exec cp {} "$log_dir"/ \;)
    fi
    rm -rf "$tmp"
}

median() {    # column FILE
    sort -g -k"$1" "$2" | awk -v k="$1" '{v[NR] = $k} END {
        if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2];
        else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
