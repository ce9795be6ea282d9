"""Subscription options, subscription identifiers, topic aliases and message expiry (MQTT 5.0).

- Subscription identifiers: one message matching two subscriptions of a session arrives once,
  with both identifiers (MQTT-3.3.4-3, MQTT-3.3.4-4).
- No Local: a session's own messages are not sent back to it on a No Local subscription
  (MQTT-3.8.3-3); another session still gets them.
- Retain Handling 2 sends no retained message, 1 only for a new subscription, 0 always
  (MQTT-3.3.1-9, MQTT-3.3.1-10, MQTT-3.3.1-11); Retain As Published keeps RETAIN on a live
  message (MQTT-3.3.1-12 says it is cleared otherwise).
- Topic aliases: a client's alias set with a topic name then used alone reaches subscribers on
  the full topic; a subscriber that allows aliases gets every message on its right topic,
  whether or not the server uses aliases towards it (MQTT-3.3.2-11: never above its maximum).
- Message expiry: a message that expires while its subscriber is offline is not delivered; a
  longer-lived one is, with what remains of its interval (MQTT-3.3.2-5, MQTT-3.3.2-6).
"""

import time

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.subscribeoptions import SubscribeOptions

from paho_common import Manual, check, log, properties, pump, run, unique_id


def sub_id(value):
    return properties(PacketTypes.SUBSCRIBE, SubscriptionIdentifier=value)


def main(host, port):
    base = f"paho/v5s/{unique_id('v5s')}"
    a = Manual(host, port, unique_id("a"), v5=True)
    b = Manual(host, port, unique_id("b"), v5=True,
               properties=properties(PacketTypes.CONNECT, TopicAliasMaximum=2))
    a.connect()
    b.connect()
    everyone = [a, b]

    # Subscription identifiers: two overlapping subscriptions, one delivery with both ids.
    b.subscribe_v5(f"{base}/ids/+/x", SubscribeOptions(qos=1), sub_id(7))
    b.subscribe_v5(f"{base}/ids/#", SubscribeOptions(qos=1), sub_id(9))
    a.publish(f"{base}/ids/y/x", "both", qos=1)
    a.publish(f"{base}/ids/fence", "fence", qos=1)
    pump(everyone, lambda: "fence" in b.payloads(), 10, "the fence")
    copies = [sorted(m.properties.SubscriptionIdentifier) for m in b.messages if m.payload == b"both"]
    # One copy with both identifiers (MQTT-3.3.4-4), or one per subscription with its own
    # (MQTT-3.3.4-5).
    check(copies in ([[7, 9]], [[7], [9]], [[9], [7]]), f"subscription identifiers {copies}")
    fence = [m for m in b.messages if m.payload == b"fence"]
    check(fence[0].properties.SubscriptionIdentifier == [9], "fence carries only id 9")
    log(f"subscription identifiers on the copies: {copies}")
    b.messages.clear()

    # No Local.
    a.subscribe_v5(f"{base}/nl", SubscribeOptions(qos=1, noLocal=True))
    b.subscribe(f"{base}/nl", 1)
    a.publish(f"{base}/nl", "own", qos=1)
    b.publish(f"{base}/nl", "other", qos=1)
    pump(everyone, lambda: a.messages and len(b.messages) >= 2, 10, "the no-local messages")
    check(a.payloads() == ["other"], f"no local subscriber got {a.payloads()}")
    check(sorted(b.payloads()) == ["other", "own"], f"b got {b.payloads()}")
    log("no local: own message not sent back")
    a.messages.clear()
    b.messages.clear()

    # Retain handling and retain as published.
    retained = f"{base}/retained"
    mid = a.publish(retained, "kept", qos=1, retain=True)
    pump(everyone, lambda: mid in a.published, 10, "the retained message stored")
    fence = f"{base}/rh-fence"
    b.subscribe(fence, 1)

    def retained_on_subscribe(options):
        b.messages.clear()
        codes = b.subscribe_v5(retained, options)
        check(codes == [1], f"SUBACK {codes}")
        a.publish(fence, "fence", qos=1)
        pump(everyone, lambda: any(m.topic == fence for m in b.messages), 10, "the fence")
        return [m.payload.decode() for m in b.messages if m.topic == retained]

    check(retained_on_subscribe(SubscribeOptions(qos=1, retainHandling=2)) == [], "handling 2 sent")
    b.client.unsubscribe(retained)
    pump(everyone, lambda: True, 0.2, "nothing")
    time.sleep(0.2)
    pump(everyone, lambda: True, 0.2, "nothing")
    check(retained_on_subscribe(SubscribeOptions(qos=1, retainHandling=1)) == ["kept"], "handling 1, new")
    check(retained_on_subscribe(SubscribeOptions(qos=1, retainHandling=1)) == [], "handling 1, existing")
    check(retained_on_subscribe(SubscribeOptions(qos=1, retainHandling=0)) == ["kept"], "handling 0")
    log("retain handling 0, 1 and 2")

    b.messages.clear()
    b.subscribe_v5(f"{base}/rap", SubscribeOptions(qos=1, retainAsPublished=True))
    b.subscribe_v5(f"{base}/norap", SubscribeOptions(qos=1, retainAsPublished=False))
    a.publish(f"{base}/rap", "r1", qos=1, retain=True)
    a.publish(f"{base}/norap", "r2", qos=1, retain=True)
    pump(everyone, lambda: len(b.messages) >= 2, 10, "the live retained messages")
    flags = {m.topic.rsplit("/", 1)[1]: m.retain for m in b.messages}
    check(flags == {"rap": True, "norap": False}, f"retain flags {flags}")
    log("retain as published")
    b.messages.clear()

    # Topic aliases, both ways: three topics through a maximum of 2 aliases towards b.
    b.subscribe(f"{base}/alias/#", 1)
    a.publish(f"{base}/alias/one", "1", qos=1,
              properties=properties(PacketTypes.PUBLISH, TopicAlias=1))
    a.publish("", "2", qos=1, properties=properties(PacketTypes.PUBLISH, TopicAlias=1))
    for name in ["two", "three", "two", "one", "three"]:
        a.publish(f"{base}/alias/{name}", name, qos=1)
    pump(everyone, lambda: len(b.messages) >= 7, 10, "the aliased messages")
    topics = [m.topic.rsplit("/", 1)[1] for m in b.messages]
    check(topics == ["one", "one", "two", "three", "two", "one", "three"], f"topics {topics}")
    aliases = [getattr(m.properties, "TopicAlias", None) for m in b.messages]
    check(all(x is None or 1 <= x <= 2 for x in aliases), f"aliases beyond 2: {aliases}")
    log(f"aliases: topics resolved correctly (server aliases seen: {aliases})")

    # Message expiry while offline.
    c_id = unique_id("c")
    expiring = f"{base}/expiry"
    c = Manual(host, port, c_id, clean_session=False, v5=True,
               properties=properties(PacketTypes.CONNECT, SessionExpiryInterval=60))
    c.connect()
    c.subscribe(expiring, 1)
    c.disconnect()
    # paho reports the disconnection when its socket closes; give the broker time to detach the
    # session, so that the messages below are queued, not sent to the closing connection (a
    # message whose delivery started is sent again on resume, expired or not).
    time.sleep(0.5)
    a.publish(expiring, "short", qos=1,
              properties=properties(PacketTypes.PUBLISH, MessageExpiryInterval=1))
    a.publish(expiring, "long", qos=1,
              properties=properties(PacketTypes.PUBLISH, MessageExpiryInterval=100))
    pump(everyone, lambda: len(a.published) >= 14, 10, "the expiring messages acknowledged")
    time.sleep(2.2)
    c = Manual(host, port, c_id, clean_session=False, v5=True,
               properties=properties(PacketTypes.CONNECT, SessionExpiryInterval=60))
    check(c.connect(), "c's session is not present")
    pump([c], lambda: c.messages, 10, "the long-lived message")
    a.publish(expiring, "fence", qos=1)
    pump([a, c], lambda: len(c.messages) >= 2, 10, "the fence")
    check(c.payloads() == ["long", "fence"], f"c got {c.payloads()}")
    left = c.messages[0].properties.MessageExpiryInterval
    check(left < 100 and left >= 90, f"remaining expiry {left}")
    log(f"the expired message was dropped; the other arrived with {left} s left")
    c.disconnect(properties=properties(PacketTypes.DISCONNECT, SessionExpiryInterval=0))
    a.disconnect()
    b.disconnect()


if __name__ == "__main__":
    run(main, budget_seconds=60)
