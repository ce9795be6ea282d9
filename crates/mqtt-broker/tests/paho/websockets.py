"""MQTT over WebSocket (section 6 of MQTT 3.1.1 and 5.0), with paho's WebSocket transport.

Run as `websockets.py HOST WS_PORT PATH TCP_PORT [CAFILE]`: the broker serves WebSocket on
WS_PORT at PATH (over TLS, with a certificate signed by CAFILE, when CAFILE is given) and plain
MQTT on TCP_PORT.

1. An MQTT 3.1.1 and an MQTT 5.0 client connect over the WebSocket (paho offers the `mqtt`
   subprotocol, MQTT-6.0.0-3/4) and subscribe.
2. Messages published at QoS 0, 1 and 2 over the WebSocket and over plain TCP reach both
   WebSocket subscribers, in order, with their QoS: one broker, whatever the transport.
3. A large message (200 kB, split by the WebSocket layer and by TCP in frames of any size,
   MQTT-6.0.0-2) arrives whole.
4. A WebSocket on another path is refused during the HTTP handshake.
"""

import paho.mqtt.client as mqtt

from paho_common import Manual, check, fail, log, pump, run, unique_id


def main(host, ws_port, path=None, tcp_port=None, cafile=None):
    check(path is not None and tcp_port is not None, "usage: HOST WS_PORT PATH TCP_PORT [CAFILE]")
    tcp_port = int(tcp_port)
    topic = f"paho/ws/{unique_id('t')}"

    v3 = Manual(host, ws_port, unique_id("ws3"), ws_path=path, ca_certs=cafile)
    v5 = Manual(host, ws_port, unique_id("ws5"), v5=True, ws_path=path, ca_certs=cafile)
    for client in (v3, v5):
        client.connect()
        client.subscribe(topic, 2)
    log("3.1.1 and 5.0 clients connected and subscribed over the WebSocket")

    ws_pub = Manual(host, ws_port, unique_id("wspub"), ws_path=path, ca_certs=cafile)
    tcp_pub = Manual(host, tcp_port, unique_id("tcppub"))
    ws_pub.connect()
    tcp_pub.connect()
    expected = []
    for qos in (0, 1, 2):
        for publisher, name in ((ws_pub, "ws"), (tcp_pub, "tcp")):
            payload = f"{name}-qos{qos}"
            publisher.publish(topic, payload, qos)
            expected.append((payload, qos))
            # One at a time: the order across two publishers is then the order sent.
            pump([ws_pub, tcp_pub, v3, v5], lambda: all(len(c.messages) >= len(expected) for c in (v3, v5)),
                 10, f"{payload} at both subscribers")
    big = bytes(range(256)) * 800
    ws_pub.publish(topic, big, 1)
    pump([ws_pub, v3, v5], lambda: all(len(c.messages) > len(expected) for c in (v3, v5)), 20,
         "the 200 kB message")
    for client in (v3, v5):
        got = [(m.payload.decode(), m.qos) for m in client.messages[: len(expected)]]
        check(got == expected, f"{client.client_id} received {got}, expected {expected}")
        last = client.messages[len(expected)]
        check(last.payload == big, f"{client.client_id}: the large message arrived with "
              f"{len(last.payload)} bytes, not {len(big)}")
    log(f"{len(expected)} messages and a 200 kB one delivered to both WebSocket subscribers")
    for client in (v3, v5, ws_pub, tcp_pub):
        client.disconnect()

    wrong = Manual(host, ws_port, unique_id("wspath"), ws_path=path + "-not", ca_certs=cafile)
    try:
        wrong.connect(timeout=5)
    except (mqtt.WebsocketConnectionError, OSError) as refused:
        log(f"a WebSocket on another path is refused: {refused}")
    else:
        fail("a WebSocket on another path was accepted")


run(main, 60, ("PATH", "TCP_PORT", "CAFILE"))
