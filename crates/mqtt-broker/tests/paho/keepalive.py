"""Keep alive expiry (MQTT 3.1.1).

A raw-socket client connects with keep alive 2 s and a will, reads its CONNACK and then sends
nothing. The broker must close the connection once 1.5 x 2 = 3 s pass without a packet
(MQTT-3.1.2-24), not before the keep alive itself (2 s) has passed, and publish the will
(MQTT-3.1.2-8).

Usage: keepalive.py HOST PORT [MARGIN_SECS]. The connection must be closed within
1.5 x keep alive + MARGIN_SECS (default 2): the slack a broker's timer may take. Mosquitto 2.0
checks keep alives only every 5 s or so, on whole-second clocks, and needs about 8.
"""

import time

from paho_common import (
    Manual,
    check,
    log,
    pump,
    raw_connect_packet,
    recv_exactly,
    run,
    socket_closed,
    tcp_connect,
    unique_id,
)

KEEPALIVE = 2
# Default slack on top of 1.5 x keep alive.
DEFAULT_MARGIN = 2.0


def main(host, port, margin=DEFAULT_MARGIN):
    margin = float(margin)
    client_id = unique_id("silent")
    will_topic = f"paho/keepalive/{client_id}"
    observer = Manual(host, port, unique_id("observer"))
    observer.connect()
    observer.subscribe(will_topic, 1)

    sock = tcp_connect(host, port)
    connect = raw_connect_packet(client_id, KEEPALIVE, will_topic, "silent client expired", 1)
    sent_at = time.monotonic()
    sock.sendall(connect)
    connack = recv_exactly(sock, 4, timeout=10)
    connack_at = time.monotonic()
    check(connack == b"\x20\x02\x00\x00", f"CONNACK {connack.hex()}, expected 20020000")
    log(f"silent client connected with keep alive {KEEPALIVE} s")

    closed = []

    def broker_closed():
        if not closed and socket_closed(sock):
            closed.append(time.monotonic())
        return bool(closed)

    limit = 1.5 * KEEPALIVE + margin
    pump([observer], broker_closed, limit + 5, "the broker to close the silent connection")
    sock.close()
    # Lower bound measured from before the CONNECT was sent (the broker's timer starts later),
    # upper bound from after the CONNACK arrived (its timer started earlier).
    not_before = closed[0] - sent_at
    within = closed[0] - connack_at
    log(f"the broker closed the connection {within:.2f} s after the CONNACK")
    check(not_before >= KEEPALIVE, f"closed after {not_before:.2f} s, before the keep alive ({KEEPALIVE} s)")
    check(within <= limit, f"closed after {within:.2f} s, later than 1.5 x keep alive + {margin} s")

    pump([observer], lambda: observer.messages, 10, "the will of the expired client")
    check(
        observer.payloads() == ["silent client expired"],
        f"will topic saw {observer.payloads()}",
    )
    log("the will was published")
    observer.disconnect()


if __name__ == "__main__":
    run(main, budget_seconds=45, optional_args=("MARGIN_SECS",))
