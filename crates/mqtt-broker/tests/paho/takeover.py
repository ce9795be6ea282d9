"""Client takeover (MQTT 3.1.1).

A second client connecting with the identifier of a connected one takes over: the broker closes
the first connection (MQTT-3.1.4-2), which did not end with DISCONNECT, so the first client's
will is published (MQTT-3.1.2-8). The new connection keeps working.
"""

from paho_common import Manual, check, log, pump, run, unique_id


def main(host, port):
    client_id = unique_id("takeover")
    will_topic = f"paho/takeover/{client_id}/will"
    observer = Manual(host, port, unique_id("observer"))
    observer.connect()
    observer.subscribe(will_topic, 1)

    first = Manual(host, port, client_id, will=(will_topic, "first was taken over", 1, False))
    first.connect()
    log("first client connected")

    second = Manual(host, port, client_id)
    second.connect()
    log("second client with the same identifier connected")

    pump([first, second, observer], lambda: first.disconnects, 10, "the first client to be disconnected")
    log(f"first client disconnected: {first.disconnects[0]}")
    pump([second, observer], lambda: observer.messages, 10, "the first client's will")
    check(
        observer.payloads() == ["first was taken over"],
        f"will topic saw {observer.payloads()}",
    )

    # The new connection is alive and usable.
    topic = f"paho/takeover/{client_id}/echo"
    second.subscribe(topic, 1)
    second.publish(topic, "still here", qos=1)
    pump([second, observer], lambda: second.messages, 10, "the echo on the new connection")
    check(second.payloads() == ["still here"], f"echo: {second.payloads()}")
    check(not second.disconnects, f"the new connection was closed: {second.disconnects}")

    # Exactly one will: the fence is the next message on the will topic.
    observer.publish(will_topic, "fence", qos=1)
    pump([second, observer], lambda: len(observer.messages) >= 2, 10, "the fence")
    check(
        observer.payloads() == ["first was taken over", "fence"],
        f"will topic saw {observer.payloads()}",
    )
    log("takeover closed the old connection and published its will once")
    second.disconnect()
    observer.disconnect()


if __name__ == "__main__":
    run(main, budget_seconds=45)
