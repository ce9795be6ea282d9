"""Flow control and shared subscriptions (MQTT 5.0).

- Receive Maximum: a subscriber that allows 2 unacknowledged QoS 1 messages (and acknowledges by
  hand) gets 2 of 6, and one more for each PUBACK it sends (MQTT-3.3.4-9), in order.
- Shared subscription with a leaving member: two members share `$share/g/...`; one takes its
  messages without acknowledging them and leaves (its session ends with the connection); the
  other member gets every one of them, so all 6 messages reach the group (5.0 section 4.8.2).
  Mosquitto 2.0.11 does not redeliver to another member: this part is ours.
"""

import time

from paho.mqtt.packettypes import PacketTypes

from paho_common import Manual, check, log, properties, pump, run, unique_id


def publish_all(publisher, topic, count):
    mids = [publisher.publish(topic, str(i), qos=1) for i in range(count)]
    pump([publisher], lambda: all(m in publisher.published for m in mids), 10, "the PUBACKs")


def main(host, port):
    base = f"paho/flow/{unique_id('flow')}"
    publisher = Manual(host, port, unique_id("pub"), v5=True)
    publisher.connect()

    # Receive Maximum 2, acknowledged by hand.
    slow = Manual(host, port, unique_id("slow"), v5=True, manual_ack=True,
                  properties=properties(PacketTypes.CONNECT, ReceiveMaximum=2))
    slow.connect()
    slow.subscribe(f"{base}/window", 1)
    publish_all(publisher, f"{base}/window", 6)
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        slow.client.loop(timeout=0.05)
    check(slow.payloads() == ["0", "1"], f"with none acknowledged the window let through {slow.payloads()}")
    for i in range(4):
        slow.client.ack(slow.messages[i].mid, 1)
        pump([slow], lambda: len(slow.messages) >= 3 + i, 10, f"message {3 + i} after an ack")
        check(len(slow.messages) == 3 + i, f"one ack let through {len(slow.messages) - 2 - i}")
    for m in slow.messages[4:]:
        slow.client.ack(m.mid, 1)
    check(slow.payloads() == [str(i) for i in range(6)], f"order: {slow.payloads()}")
    log("receive maximum: 2 in flight, one more per PUBACK, in order")
    slow.disconnect()

    # Shared subscription, one member leaves without acknowledging.
    group = f"$share/g/{base}/jobs"
    leaving = Manual(host, port, unique_id("leaving"), v5=True, manual_ack=True)
    staying = Manual(host, port, unique_id("staying"), v5=True)
    leaving.connect()
    staying.connect()
    leaving.subscribe(group, 1)
    staying.subscribe(group, 1)
    publish_all(publisher, f"{base}/jobs", 6)
    pump([leaving, staying], lambda: len(leaving.messages) + len(staying.messages) >= 6, 10, "the jobs")
    taken = leaving.payloads()
    check(taken, "round robin gave the leaving member nothing")
    log(f"the leaving member holds {taken} unacknowledged")
    leaving.disconnect()
    pump([staying], lambda: len(staying.messages) >= 6, 10, "the jobs of the member that left")
    got = sorted(staying.payloads(), key=int)
    check(got == [str(i) for i in range(6)], f"the staying member got {got}")
    log("the unacknowledged jobs of the leaving member went to the other member")
    staying.disconnect()
    publisher.disconnect()


if __name__ == "__main__":
    run(main, budget_seconds=45)
