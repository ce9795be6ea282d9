"""QoS 2 exactly once across abrupt reconnects (MQTT 3.1.1).

A subscriber with a persistent session (clean session 0) subscribes at QoS 2; a publisher sends
COUNT QoS 2 messages. While they flow, the subscriber's socket is closed without DISCONNECT
three times, with QoS 2 exchanges in flight in both directions; each time the publisher goes on
for a while (so messages are queued for the offline session, MQTT-3.1.2-5) before the same paho
client reconnects with its in-flight state, is told its session is present (MQTT-3.2.2-2), and
the broker resends the unfinished PUBLISH and PUBREL packets (MQTT-4.4.0-1).

At the end every message has been delivered to the application exactly once (MQTT-4.3.3-2):
none missing, none twice, all at QoS 2. paho delivers a QoS 2 message on PUBREL and keeps its
incoming QoS 2 state across `reconnect()`, so a duplicate here means the broker sent a message
again as a new one. A fence message published after the last one shows nothing else was on its
way.
"""

import collections
import time

from paho_common import Manual, check, log, pump, run, unique_id

COUNT = 300
# Received-message counts at which the subscriber's socket is closed abruptly.
ABORT_AT = (50, 130, 210)
# How far the publisher may run ahead of the subscriber (more than the broker's in-flight window,
# so QoS 2 exchanges are under way with the subscriber when its socket is closed).
AHEAD = 40
# Messages the publisher completes while the subscriber is offline, each time.
OFFLINE_PUBLISHES = 15
# Seconds the whole exchange may take.
DEADLINE = 60


def main(host, port):
    client_id = unique_id("qos2sub")
    topic = f"paho/qos2/{client_id}"

    cleaner = Manual(host, port, client_id, clean_session=True)
    cleaner.connect()
    cleaner.disconnect()

    subscriber = Manual(host, port, client_id, clean_session=False)
    check(not subscriber.connect(), "first persistent CONNACK has session present = 1")
    subscriber.subscribe(topic, 2)

    publisher = Manual(host, port, unique_id("qos2pub"))
    publisher.connect()
    mids = []

    def publish_next():
        mids.append(publisher.publish(topic, f"m{len(mids):04d}", qos=2))

    def received():
        return len(set(subscriber.payloads()))

    aborts = 0
    deadline = time.monotonic() + DEADLINE
    while received() < COUNT or not publisher.published.issuperset(mids):
        check(time.monotonic() < deadline, f"only {received()} of {COUNT} messages after {DEADLINE} s")
        while len(mids) < COUNT and len(mids) - received() < AHEAD:
            publish_next()
        publisher.client.loop(timeout=0.005)
        subscriber.client.loop(timeout=0.005)
        if aborts < len(ABORT_AT) and received() >= ABORT_AT[aborts]:
            aborts += 1
            awaiting_pubrel = len(getattr(subscriber.client, "_in_messages", ()))
            subscriber.abort()
            log(
                f"abort {aborts}: socket closed with {received()} messages received, "
                f"{awaiting_pubrel} awaiting PUBREL, {len(mids)} published, "
                f"{len(publisher.published)} completed by the publisher"
            )
            target = min(COUNT, len(mids) + OFFLINE_PUBLISHES)
            while len(mids) < target:
                publish_next()
            pump([publisher], lambda: publisher.published.issuperset(mids), 30, "publishing while offline")
            check(subscriber.reconnect(), f"reconnect {aborts}: session present = 0, expected 1")
            log(f"reconnect {aborts}: session present, {len(mids)} published")
    check(aborts == len(ABORT_AT), f"only {aborts} aborts happened")

    publisher.publish(topic, "fence", qos=2)
    pump([publisher, subscriber], lambda: "fence" in subscriber.payloads(), 30, "the fence")

    payloads = [p for p in subscriber.payloads() if p != "fence"]
    counts = collections.Counter(payloads)
    expected = {f"m{i:04d}" for i in range(COUNT)}
    missing = sorted(expected - counts.keys())
    duplicated = sorted(p for p, n in counts.items() if n > 1)
    unexpected = sorted(counts.keys() - expected)
    check(not missing, f"{len(missing)} messages missing: {missing[:20]}")
    check(not duplicated, f"{len(duplicated)} messages delivered more than once: {duplicated[:20]}")
    check(not unexpected, f"unexpected messages: {unexpected[:20]}")
    check(subscriber.payloads().count("fence") == 1, "the fence arrived twice")
    qos = {m.qos for m in subscriber.messages}
    check(qos == {2}, f"messages delivered at QoS {qos}, expected 2")
    dups = sum(1 for m in subscriber.messages if m.dup)
    log(f"all {COUNT} messages delivered exactly once ({dups} of them from a DUP=1 resend)")
    publisher.disconnect()
    subscriber.disconnect()


if __name__ == "__main__":
    run(main, budget_seconds=90)
