"""Session expiry, will delay, DISCONNECT with will, and takeover (MQTT 5.0).

- A session with Session Expiry Interval 1 is gone 2 s after its connection closed; one with 60
  is still there (MQTT-3.1.2-23). A DISCONNECT may shorten the interval to 0, ending the session
  with the connection.
- A will with a Will Delay Interval of 2 s is not published when the client reconnects within
  the delay (MQTT-3.1.3-9), and is published once the delay runs out (MQTT-3.1.2-8).
- DISCONNECT with reason 0x04 ("disconnect with will message") publishes the will.
- A client taken over by a new connection with its identifier is told so with DISCONNECT 0x8E
  before its connection closes (MQTT-3.1.4-3).
"""

import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode

from paho_common import Manual, check, log, properties, pump, run, unique_id


def persistent(host, port, client_id, expiry, will=None):
    return Manual(host, port, client_id, clean_session=False, v5=True, will=will,
                  properties=properties(PacketTypes.CONNECT, SessionExpiryInterval=expiry))


def main(host, port):
    base = f"paho/v5session/{unique_id('v5')}"

    # Session expiry.
    short_id, long_id = unique_id("short"), unique_id("long")
    for cid, expiry in [(short_id, 1), (long_id, 60)]:
        c = persistent(host, port, cid, expiry)
        c.connect()
        c.subscribe(f"{base}/expiry", 1)
        c.disconnect()
    time.sleep(2.5)
    short = persistent(host, port, short_id, 1)
    check(not short.connect(), "a session with expiry 1 s was still present after 2.5 s")
    long = persistent(host, port, long_id, 60)
    check(long.connect(), "a session with expiry 60 s was gone after 2.5 s")
    long.disconnect(properties=properties(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    long = persistent(host, port, long_id, 60)
    check(not long.connect(), "DISCONNECT with session expiry 0 did not end the session")
    long.disconnect(properties=properties(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    short.disconnect(properties=properties(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    log("session expiry: ended after its interval, kept within it, shortened by DISCONNECT")

    # Will delay.
    observer = Manual(host, port, unique_id("observer"), v5=True)
    observer.connect()
    will_topic = f"{base}/will"
    observer.subscribe(will_topic, 1)
    w_id = unique_id("w")
    delayed = properties(PacketTypes.WILLMESSAGE, WillDelayInterval=2)
    will = (will_topic, "delayed will", 1, False, delayed)
    w = persistent(host, port, w_id, 30, will=will)
    w.connect()
    w.abort()
    time.sleep(0.5)
    w = persistent(host, port, w_id, 30, will=will)
    check(w.connect(), "the session was not resumed")
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        observer.client.loop(timeout=0.05)
        w.client.loop(timeout=0.05)
    check(observer.messages == [], f"the will was published although the client came back: {observer.payloads()}")
    log("will delay: cancelled by a reconnect within the delay")
    w.abort()
    closed = time.monotonic()
    pump([observer], lambda: observer.messages, 10, "the delayed will")
    waited = time.monotonic() - closed
    check(observer.payloads() == ["delayed will"], f"will topic saw {observer.payloads()}")
    check(waited >= 1.5, f"the will came {waited:.2f} s after the connection closed, before its delay")
    log(f"will delay: published {waited:.2f} s after the connection closed")
    observer.messages.clear()

    # DISCONNECT 0x04 publishes the will.
    d = Manual(host, port, unique_id("d"), v5=True, will=(will_topic, "asked for", 1, False))
    d.connect()
    d.disconnect(reason=ReasonCode(PacketTypes.DISCONNECT, "Disconnect with will message"))
    pump([observer], lambda: observer.messages, 10, "the will of DISCONNECT 0x04")
    check(observer.payloads() == ["asked for"], f"will topic saw {observer.payloads()}")
    log("DISCONNECT 0x04 published the will")

    # Takeover: the old connection hears 0x8E.
    t_id = unique_id("t")
    first = Manual(host, port, t_id, v5=True)
    first.connect()
    second = Manual(host, port, t_id, v5=True)
    second.connect()
    pump([first, second], lambda: first.disconnects, 10, "the first connection to be closed")
    code = first.disconnects[0]
    check(code.value == 0x8E, f"the taken-over client was told {code} ({code.value:#x})")
    log("takeover: the old connection got DISCONNECT 0x8E")
    second.disconnect()
    observer.disconnect()


if __name__ == "__main__":
    run(main, budget_seconds=60)
