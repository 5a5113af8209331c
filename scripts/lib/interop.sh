# What the strongSwan interoperability tests share (IKEv1 and IKEv2: one
# esprit gateway, gw1, against one charon, gw2). Source it after
# testlib.sh, topo.sh and strongswan.sh. Each scenario's files are under
# $RUN (its controld's socket, the WAN capture wan.pcap).
#
#   esprit ARGS...          the operator CLI against this run's controld
#   active N                controld shows N negotiated SAs active (A/U)
#                           within 15 s
#   active_spis             the SPIs `esprit get sa` shows as active,
#                           sorted, on one line
#   first_ping FROM DST     one echo request, answered (it was held while
#                           IKE ran); logs its round trip
#   swan_installed N        strongSwan lists N CHILD_SAs INSTALLED within 5 s
#   esp_count               ESP packets (in UDP 4500, or plain) in the WAN
#                           capture so far
#   wait_capture N          up to 10 s until the capture holds N ESP packets
#   spis_each_pair N        the capture shows N SPIs, each with at least 5
#                           packets, exactly the N SPIs of `esprit get sa`

esprit() { "$BIN/esprit" --socket "$RUN/cd.sock" "$@"; }

active() {
    local _
    for _ in $(seq 150); do
        [ "$(esprit get sa 2>/dev/null | grep -c ' A/U ')" = "$1" ] && return 0
        sleep 0.1
    done
    esprit get sa >&2 || true
    return 1
}

active_spis() { esprit get sa | awk '/ A\/U / { print $5 }' | sort | tr '\n' ' '; }

first_ping() {
    nsx "$1" ping -c 1 -W 8 "$2" >"$RUN/first-$1-$2.out" 2>&1 || {
        cat "$RUN/first-$1-$2.out" >&2
        esprit get counter 2>&1 | grep -v ' 0$' | sed 's/^/    /' >&2
        return 1
    }
    log "    $(grep -o 'time=[0-9.]* ms' "$RUN/first-$1-$2.out") for the first packet $1 -> $2 (IKE included)"
}

swan_installed() {
    local _
    for _ in $(seq 50); do
        [ "$(swan_ctl --list-sas 2>/dev/null | grep -c INSTALLED)" = "$1" ] && return 0
        sleep 0.1
    done
    swan_ctl --list-sas >&2
    return 1
}

esp_count() { tcpdump -r "$RUN/wan.pcap" -n 2>/dev/null | grep -c 'ESP(spi=0x'; }

wait_capture() {
    local _
    for _ in $(seq 100); do
        [ "$(esp_count)" -ge "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

spis_each_pair() {
    local got want
    tcpdump -r "$RUN/wan.pcap" -n 2>/dev/null | grep -o 'ESP(spi=0x[0-9a-f]*' |
        sed 's/ESP(spi=0x//' | sort | uniq -c >"$RUN/spis.txt"
    sed 's/^/    packets per SPI: /' "$RUN/spis.txt" >&2
    got=$(awk '$1 >= 5 { print $2 }' "$RUN/spis.txt" | sort | tr '\n' ' ')
    want=$(active_spis)
    [ "$(echo "$got" | wc -w)" = "$1" ] && [ "$got" = "$want" ] || {
        log "    capture SPIs: $got"
        log "    get sa SPIs:  $want"
        return 1
    }
}
