"""Persistent session resume (MQTT 3.1.1, clean session 0).

1. A clean-session connect reports no session (MQTT-3.2.2-1); so does the first persistent
   connect (MQTT-3.2.2-3). The client subscribes at QoS 1 and disconnects cleanly.
2. Another client publishes QoS 1 messages while the first is offline; they are stored in its
   session (MQTT-3.1.2-5).
3. A new paho client with the same identifier and clean session 0 is told the session is present
   (MQTT-3.2.2-2) and receives every queued message, once, in order, at QoS 1 (MQTT-3.1.2-4).
4. Connecting with clean session 1 discards the session (MQTT-3.1.2-6): a following persistent
   connect reports no session.
"""

from paho_common import Manual, check, log, pump, run, unique_id

COUNT = 10


def main(host, port):
    client_id = unique_id("persist")
    topic = f"paho/persistent/{client_id}"

    fresh = Manual(host, port, client_id, clean_session=True)
    check(not fresh.connect(), "clean-session CONNACK has session present = 1")
    fresh.disconnect()

    first = Manual(host, port, client_id, clean_session=False)
    check(not first.connect(), "first persistent CONNACK has session present = 1 (no session yet)")
    first.subscribe(topic, 1)
    first.disconnect()
    log("subscribed with a persistent session and disconnected")

    publisher = Manual(host, port, unique_id("pub"))
    publisher.connect()
    mids = [publisher.publish(topic, f"queued-{i}", qos=1) for i in range(COUNT)]
    pump([publisher], lambda: publisher.published.issuperset(mids), 10, "PUBACKs")
    publisher.disconnect()
    log(f"published {COUNT} QoS 1 messages while the subscriber was offline")

    back = Manual(host, port, client_id, clean_session=False)
    check(back.connect(), "reconnect with clean session 0: session present = 0, expected 1")
    pump([back], lambda: len(back.messages) >= COUNT, 10, f"{COUNT} queued messages")
    expected = [f"queued-{i}" for i in range(COUNT)]
    check(back.payloads() == expected, f"queued messages: got {back.payloads()}, expected {expected}")
    qos = [m.qos for m in back.messages]
    check(qos == [1] * COUNT, f"queued messages delivered at QoS {qos}, expected 1")
    topics = {m.topic for m in back.messages}
    check(topics == {topic}, f"queued messages on topics {topics}")

    # The session's subscription is live again: a fresh message arrives too, after the queue,
    # which also shows no queued message is delivered twice.
    back.publish(topic, "live", qos=1)
    pump([back], lambda: len(back.messages) > COUNT, 10, "the live message")
    check(back.payloads() == expected + ["live"], f"after the live message: {back.payloads()}")
    back.disconnect()
    log("session resumed with every queued message")

    cleaner = Manual(host, port, client_id, clean_session=True)
    check(not cleaner.connect(), "clean-session CONNACK has session present = 1")
    cleaner.disconnect()
    after = Manual(host, port, client_id, clean_session=False)
    check(not after.connect(), "the session survived a clean-session connect")
    after.disconnect()
    log("clean session discarded the session")


if __name__ == "__main__":
    run(main, budget_seconds=45)
