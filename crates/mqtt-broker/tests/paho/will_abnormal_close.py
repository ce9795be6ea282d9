"""Will on abnormal close (MQTT 3.1.1).

- A client with a will that disconnects cleanly: its will is discarded (MQTT-3.14.4-3).
- A client with a will whose socket is closed without DISCONNECT: its will is published
  (MQTT-3.1.2-8), once; with the will-retain flag it is also stored as a retained message
  (MQTT-3.1.2-17), which a later subscriber gets with RETAIN 1 (MQTT-3.3.1-8).

A fence message published after everything shows that nothing else (the discarded will, a second
copy of the published one) was on its way to the observer.
"""

from paho_common import Manual, check, log, pump, run, unique_id


def main(host, port):
    topic = f"paho/will/{unique_id('will')}"
    observer = Manual(host, port, unique_id("observer"))
    observer.connect()
    observer.subscribe(topic, 1)

    polite = Manual(host, port, unique_id("polite"), will=(topic, "polite will", 1, False))
    polite.connect()
    polite.disconnect()
    log("client with a will disconnected cleanly")

    crashed = Manual(host, port, unique_id("crashed"), will=(topic, "crashed will", 1, True))
    crashed.connect()
    crashed.abort()
    log("client with a will closed its socket without DISCONNECT")

    pump([observer], lambda: observer.messages, 10, "the will of the crashed client")
    first = observer.messages[0]
    check(first.payload == b"crashed will", f"first message on the will topic: {first.payload!r}")
    check(first.qos == 1, f"will delivered at QoS {first.qos}, expected 1")
    check(not first.retain, "a will delivered to an existing subscription has RETAIN 1")

    observer.publish(topic, "fence", qos=1)
    pump([observer], lambda: len(observer.messages) >= 2, 10, "the fence")
    check(
        observer.payloads() == ["crashed will", "fence"],
        f"will topic saw {observer.payloads()}, expected the crashed client's will, then the fence",
    )
    log("only the crashed client's will was published")

    late = Manual(host, port, unique_id("late"))
    late.connect()
    late.subscribe(topic, 1)
    # The fence was not retained, so the retained message is still the will.
    pump([late], lambda: late.messages, 10, "the retained will")
    check(late.messages[0].payload == b"crashed will", f"retained: {late.messages[0].payload!r}")
    check(late.messages[0].retain, "the retained will is delivered with RETAIN 0")
    log("the will was retained")
    for client in (observer, late):
        client.disconnect()


if __name__ == "__main__":
    run(main, budget_seconds=45)
