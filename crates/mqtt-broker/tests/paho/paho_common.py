"""Helpers shared by the paho-mqtt interoperability scripts (not a test itself).

Every script is run as `python3 <script>.py HOST PORT` by `tests/interop_paho.rs`; it exits 0 on
success and 1 with a `FAIL: ...` line otherwise. A watchdog (`faulthandler`) ends a script that
overruns its budget with exit status 1 and a traceback of where it was stuck.

Clients are driven by hand with `Client.loop()` in one thread (see `Manual`): nothing happens
behind the script's back, and paho never reconnects by itself.
"""

import faulthandler
import os
import socket
import sys
import time
import uuid

import paho.mqtt
import paho.mqtt.client as mqtt


class Failure(Exception):
    """A check that did not hold; the message says which."""


def fail(message):
    raise Failure(message)


def check(condition, message):
    if not condition:
        fail(message)


def log(message):
    print(f"[{time.monotonic():.3f}] {message}", flush=True)


def run(main, budget_seconds, optional_args=()):
    """Parses `HOST PORT [OPTIONAL...]`, arms the watchdog and runs `main(host, port, *optional)`.

    `optional_args` names the optional arguments (for the usage line); those given are passed
    to `main` as strings.
    """
    optional = sys.argv[3:]
    if len(sys.argv) < 3 or len(optional) > len(optional_args):
        extra = "".join(f" [{name}]" for name in optional_args)
        print(f"usage: {sys.argv[0]} HOST PORT{extra}", file=sys.stderr)
        sys.exit(2)
    host, port = sys.argv[1], int(sys.argv[2])
    major = int(paho.mqtt.__version__.split(".")[0])
    if major != 2:
        print(f"FAIL: paho-mqtt 2.x is required, found {paho.mqtt.__version__}", flush=True)
        sys.exit(1)
    faulthandler.dump_traceback_later(budget_seconds, exit=True)
    try:
        main(host, port, *optional)
    except Failure as failure:
        print(f"FAIL: {failure}", flush=True)
        sys.exit(1)
    finally:
        faulthandler.cancel_dump_traceback_later()
    print("ok", flush=True)
    sys.exit(0)


def unique_id(label):
    """A client identifier no other run uses (at most 23 characters, as MQTT 3.1.1 guarantees)."""
    return f"{label[:10]}-{os.getpid() % 100000}-{uuid.uuid4().hex[:6]}"


class Manual:
    """A paho client driven by `pump`; it records what its callbacks see.

    MQTT 3.1.1 by default; with `v5=True` it speaks MQTT 5.0, `clean_session` is Clean Start,
    `properties` are the CONNECT properties and the will's fifth element its properties.
    With `ws_path` it speaks MQTT over a WebSocket on that path; with `ca_certs` (a PEM file),
    over TLS, verifying the server's certificate against it.
    """

    def __init__(
        self,
        host,
        port,
        client_id,
        clean_session=True,
        keepalive=30,
        will=None,
        v5=False,
        properties=None,
        manual_ack=False,
        ws_path=None,
        ca_certs=None,
    ):
        self.host = host
        self.port = port
        self.client_id = client_id
        self.keepalive = keepalive
        self.v5 = v5
        self.clean_start = clean_session
        self.properties = properties
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            clean_session=None if v5 else clean_session,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            manual_ack=manual_ack,
            transport="tcp" if ws_path is None else "websockets",
        )
        if ws_path is not None:
            self.client.ws_set_options(path=ws_path)
        if ca_certs is not None:
            self.client.tls_set(ca_certs=ca_certs)
        if will is not None:
            topic, payload, qos, retain = will[:4]
            will_properties = will[4] if len(will) > 4 else None
            self.client.will_set(topic, payload, qos=qos, retain=retain, properties=will_properties)
        self.connack_properties = []  # per CONNACK (5.0)
        self.aliases = {}  # server topic alias -> topic name (5.0)
        self.disconnect_properties = []  # per disconnection (5.0)
        self.connacks = []  # (session_present, reason code) per CONNACK
        self.disconnects = []  # reason codes
        self.messages = []  # MQTTMessage, in arrival order
        self.subacks = {}  # mid -> list of granted QoS / failure codes
        self.published = set()  # mids whose QoS flow completed
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_publish = self._on_publish

    def _on_connect(self, _client, _userdata, flags, reason_code, properties):
        self.connacks.append((flags.session_present, reason_code))
        self.connack_properties.append(properties)

    def _on_disconnect(self, _client, _userdata, _flags, reason_code, properties):
        self.disconnects.append(reason_code)
        self.disconnect_properties.append(properties)

    def _on_message(self, _client, _userdata, message):
        # paho 2 does not resolve the Topic Aliases a server sends (5.0): done here, from the
        # wire's topic name and alias, so that scripts see full topic names.
        alias = getattr(message.properties, "TopicAlias", None) if self.v5 else None
        if alias is not None:
            if message.topic:
                self.aliases[alias] = message.topic
            else:
                check(alias in self.aliases, f"{self.client_id}: unknown server topic alias {alias}")
                message._topic = self.aliases[alias].encode()
        self.messages.append(message)

    def _on_subscribe(self, _client, _userdata, mid, reason_codes, _properties):
        self.subacks[mid] = [code.value for code in reason_codes]

    def _on_publish(self, _client, _userdata, mid, _reason_code, _properties):
        self.published.add(mid)

    def connect(self, timeout=10.0):
        """Connects and waits for the CONNACK; returns its session-present flag."""
        before = len(self.connacks)
        self.aliases = {}  # aliases belong to one connection
        if self.v5:
            self.client.connect(
                self.host,
                self.port,
                keepalive=self.keepalive,
                clean_start=self.clean_start,
                properties=self.properties,
            )
        else:
            self.client.connect(self.host, self.port, keepalive=self.keepalive)
        return self._await_connack(before, timeout)

    def reconnect(self, timeout=10.0):
        """Reconnects the same paho client (keeping its in-flight state); returns session present."""
        before = len(self.connacks)
        self.client.reconnect()
        return self._await_connack(before, timeout)

    def _await_connack(self, before, timeout):
        pump([self], lambda: len(self.connacks) > before, timeout, f"CONNACK for {self.client_id}")
        session_present, reason_code = self.connacks[-1]
        check(not reason_code.is_failure, f"{self.client_id}: connection refused: {reason_code}")
        return session_present

    def subscribe(self, topic, qos, timeout=10.0):
        result, mid = self.client.subscribe(topic, qos)
        check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: subscribe failed: {result}")
        pump([self], lambda: mid in self.subacks, timeout, f"SUBACK for {topic}")
        check(self.subacks[mid] == [qos], f"{self.client_id}: {topic} granted {self.subacks[mid]}, asked {qos}")

    def subscribe_v5(self, topic, options, properties=None, timeout=10.0):
        """(5.0) Subscribes with `SubscribeOptions` and properties; returns the SUBACK codes."""
        result, mid = self.client.subscribe(topic, options=options, properties=properties)
        check(result == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: subscribe failed: {result}")
        pump([self], lambda: mid in self.subacks, timeout, f"SUBACK for {topic}")
        return self.subacks[mid]

    def publish(self, topic, payload, qos, retain=False, properties=None):
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        check(info.rc == mqtt.MQTT_ERR_SUCCESS, f"{self.client_id}: publish failed: {info.rc}")
        return info.mid

    def disconnect(self, timeout=10.0, reason=None, properties=None):
        """A clean disconnect (DISCONNECT sent, in 5.0 with this reason and properties) and the
        socket closed."""
        before = len(self.disconnects)
        if self.v5:
            self.client.disconnect(reasoncode=reason, properties=properties)
        else:
            self.client.disconnect()
        pump([self], lambda: len(self.disconnects) > before, timeout, f"{self.client_id} disconnect")

    def abort(self):
        """Closes the socket without DISCONNECT, as a crashed client or a lost network would."""
        sock = self.client.socket()
        check(sock is not None, f"{self.client_id}: no socket to abort")
        sock.close()

    def payloads(self):
        return [m.payload.decode() for m in self.messages]


def properties(packet_type, **values):
    """(5.0) paho `Properties` of a packet type (`PacketTypes.CONNECT`, ...) with these values."""
    from paho.mqtt.properties import Properties

    props = Properties(packet_type)
    for name, value in values.items():
        setattr(props, name, value)
    return props


def pump(clients, until, timeout, what):
    """Runs the clients' network loops until `until()` holds; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not until():
        if time.monotonic() >= deadline:
            fail(f"timed out after {timeout} s waiting for {what}")
        looped = False
        for manual in clients:
            if manual.client.socket() is not None:
                manual.client.loop(timeout=0.01)
                looped = True
        if not looped:
            time.sleep(0.01)


def raw_connect_packet(client_id, keepalive, will_topic, will_payload, will_qos):
    """An MQTT 3.1.1 CONNECT with clean session and a will, built by hand."""

    def string(text):
        data = text.encode()
        return len(data).to_bytes(2, "big") + data

    flags = 0x02 | 0x04 | (will_qos << 3)
    variable = string("MQTT") + bytes([4, flags]) + keepalive.to_bytes(2, "big")
    payload = string(client_id) + string(will_topic) + string(will_payload)
    body = variable + payload
    check(len(body) < 128, "raw CONNECT too long for a one-byte remaining length")
    return bytes([0x10, len(body)]) + body


def recv_exactly(sock, count, timeout):
    sock.settimeout(timeout)
    data = b""
    while len(data) < count:
        chunk = sock.recv(count - len(data))
        check(chunk, f"connection closed after {len(data)} of {count} bytes")
        data += chunk
    return data


def socket_closed(sock):
    """Whether the peer has closed `sock` (EOF or reset); never blocks."""
    sock.setblocking(False)
    try:
        data = sock.recv(64)
    except BlockingIOError:
        return False
    except (ConnectionResetError, ConnectionAbortedError):
        return True
    check(not data, f"unexpected bytes from the broker: {data!r}")
    return True


def tcp_connect(host, port):
    return socket.create_connection((host, port), timeout=10)
