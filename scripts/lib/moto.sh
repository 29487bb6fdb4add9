# Sourced by scripts that need moto's S3 server (scripts/moto-server).
#
# start_moto PORT LOG: starts it on 127.0.0.1:PORT and returns once it listens (werkzeug prints
# "Running on …" after binding the socket), or fails if it ends first or says nothing for 60 s.
# Its further output goes to LOG. Sets MOTO_PID.
start_moto() {
    local port=$1 log=$2 line fd
    exec {fd}< <(exec "$(dirname "${BASH_SOURCE[0]}")/../moto-server" -H 127.0.0.1 -p "$port" 2>&1)
    MOTO_PID=$!
    while IFS= read -r -t 60 line <&"$fd"; do
        echo "$line" >>"$log"
        if [[ $line == *"Running on http://127.0.0.1:$port"* ]]; then
            cat <&"$fd" >>"$log" & # drained, so request lines never stall moto
            exec {fd}<&-
            return 0
        fi
    done
    exec {fd}<&-
    echo "moto did not start; its output:" >&2
    cat "$log" >&2
    return 1
}
