"""Request/response through the broker (MQTT 5.0).

A requester publishes a request carrying a Response Topic, Correlation Data, a Content Type, a
Payload Format Indicator and User Properties (one name twice). The responder receives every one
of them unchanged, the user properties in their order (MQTT-3.3.2-4, MQTT-3.3.2-15,
MQTT-3.3.2-16, MQTT-3.3.2-17, MQTT-3.3.2-18), and answers on the Response Topic with the same
Correlation Data, which the requester matches to its request.
"""

from paho.mqtt.packettypes import PacketTypes

from paho_common import Manual, check, log, properties, pump, run, unique_id


def main(host, port):
    base = f"paho/rr/{unique_id('rr')}"
    requester = Manual(host, port, unique_id("requester"), v5=True)
    responder = Manual(host, port, unique_id("responder"), v5=True)
    requester.connect()
    responder.connect()
    requester.subscribe(f"{base}/response/#", 1)
    responder.subscribe(f"{base}/request", 1)

    users = [("trace", "1"), ("tenant", "blue"), ("trace", "2")]
    request = properties(
        PacketTypes.PUBLISH,
        ResponseTopic=f"{base}/response/42",
        CorrelationData=b"\x00\x01request-42",
        ContentType="application/json",
        PayloadFormatIndicator=1,
        UserProperty=users,
    )
    requester.publish(f"{base}/request", '{"op": "ping"}', qos=1, properties=request)
    pump([requester, responder], lambda: responder.messages, 10, "the request")
    got = responder.messages[0]
    p = got.properties
    check(p.ResponseTopic == f"{base}/response/42", f"response topic: {p.ResponseTopic!r}")
    check(p.CorrelationData == b"\x00\x01request-42", f"correlation data: {p.CorrelationData!r}")
    check(p.ContentType == "application/json", f"content type: {p.ContentType!r}")
    check(p.PayloadFormatIndicator == 1, f"payload format: {p.PayloadFormatIndicator!r}")
    check(p.UserProperty == users, f"user properties: {p.UserProperty!r}")
    log("the request arrived with every property unchanged and in order")

    reply = properties(PacketTypes.PUBLISH, CorrelationData=p.CorrelationData)
    responder.publish(p.ResponseTopic, '{"op": "pong"}', qos=1, properties=reply)
    pump([requester, responder], lambda: requester.messages, 10, "the response")
    answer = requester.messages[0]
    check(answer.topic == f"{base}/response/42", f"response on {answer.topic}")
    check(answer.payload == b'{"op": "pong"}', f"response payload {answer.payload!r}")
    check(
        answer.properties.CorrelationData == b"\x00\x01request-42",
        f"response correlation data {answer.properties.CorrelationData!r}",
    )
    log("the response came back on the response topic with the correlation data")
    requester.disconnect()
    responder.disconnect()


if __name__ == "__main__":
    run(main, budget_seconds=30)
