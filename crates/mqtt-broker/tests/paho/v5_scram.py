"""SCRAM-SHA-256 enhanced authentication and re-authentication (MQTT 5.0 section 4.12).

An MQTT 5.0 client written here on raw sockets with Python's own hashlib and hmac (an
implementation of RFC 5802/7677 independent of the broker's): CONNECT with the method
SCRAM-SHA-256 gets an AUTH 0x18 challenge (MQTT-4.12.0-2), the client answers with AUTH 0x18
(MQTT-4.12.0-3), CONNACK 0x00 carries the method and the server's proof (MQTT-4.12.0-5), which
the client verifies. On the live connection AUTH 0x19 re-authenticates the same way, ending with
AUTH 0x00 (MQTT-4.12.1-1); a failed re-authentication gets DISCONNECT 0x87 and the connection
closes (MQTT-4.12.1-2); re-authenticating with another method is a protocol error (DISCONNECT
0x82). A wrong password at CONNECT gets CONNACK 0x87 (MQTT-4.12.0-4).

Also: re-authenticating as another user is refused (0x87), a re-authentication left half done
is ended with DISCONNECT 0x87 within the connect timeout, and while SCRAM is configured a
CONNECT without an authentication method (here MQTT 3.1.1) is refused.

Arguments: HOST PORT USER PASSWORD OTHER_USER OTHER_PASSWORD (the broker knows both users; its
connect timeout is short).
"""

import base64
import hashlib
import hmac
import os
import time

from paho_common import check, log, recv_exactly, run, tcp_connect

METHOD = "SCRAM-SHA-256"


def varint(n):
    out = b""
    while True:
        byte = n % 128
        n //= 128
        out += bytes([byte | (0x80 if n else 0)])
        if not n:
            return out


def string(text):
    data = text.encode() if isinstance(text, str) else text
    return len(data).to_bytes(2, "big") + data


def packet(first, body):
    return bytes([first]) + varint(len(body)) + body


def auth_properties(data):
    props = b"\x15" + string(METHOD) + b"\x16" + string(data)
    return varint(len(props)) + props


def connect_packet(client_id, first_message):
    variable = string("MQTT") + bytes([5, 0x02]) + (30).to_bytes(2, "big")
    return packet(0x10, variable + auth_properties(first_message) + string(client_id))


def auth_packet(reason, data, method=METHOD):
    props = b"\x15" + string(method) + b"\x16" + string(data)
    return packet(0xF0, bytes([reason]) + varint(len(props)) + props)


def read_varint(sock):
    n, shift = 0, 0
    while True:
        byte = recv(sock, 1)[0]
        n |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return n


def recv(sock, count):
    return recv_exactly(sock, count, 10)


def read_packet(sock):
    """(packet type, reason code, {property id: value}) of the next CONNACK, AUTH, DISCONNECT or
    PINGRESP."""
    first = recv(sock, 1)[0]
    body = recv(sock, read_varint(sock))
    kind = first >> 4
    if kind == 13:  # PINGRESP
        return kind, None, {}
    reason = body[1] if kind == 2 else (body[0] if body else 0)
    rest = body[2:] if kind == 2 else body[1:]
    props = {}
    if rest:
        length, i = 0, 0
        shift = 0
        while True:
            byte = rest[i]
            i += 1
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        end = i + length
        while i < end:
            pid = rest[i]
            i += 1
            if pid in (0x15, 0x16, 0x1F):  # method, data, reason string
                n = int.from_bytes(rest[i:i + 2], "big")
                props[pid] = rest[i + 2:i + 2 + n]
                i += 2 + n
            elif pid in (0x21, 0x22, 0x13):  # two-byte integers
                i += 2
            elif pid in (0x11, 0x27):  # four-byte integers
                i += 4
            elif pid in (0x24, 0x25, 0x28, 0x29, 0x2A):  # bytes
                i += 1
            elif pid == 0x12:  # assigned client identifier
                n = int.from_bytes(rest[i:i + 2], "big")
                i += 2 + n
            else:
                break
    return kind, reason, props


class Scram:
    """The client side of RFC 5802 with SHA-256 (RFC 7677)."""

    def __init__(self, user, password):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.first_bare = f"n={user},r={self.nonce}"
        self.server_signature = None

    def first(self):
        return "n,," + self.first_bare

    def final(self, server_first):
        attrs = dict(part.split("=", 1) for part in server_first.split(","))
        check(attrs["r"].startswith(self.nonce), "the server nonce does not extend ours")
        salt = base64.b64decode(attrs["s"])
        salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, int(attrs["i"]))
        client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={attrs['r']}"
        auth_message = f"{self.first_bare},{server_first},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
        self.server_signature = hmac.new(server_key, auth_message, hashlib.sha256).digest()
        return f"{without_proof},p={base64.b64encode(proof).decode()}"

    def verify(self, server_final):
        check(server_final.startswith("v="), f"server-final {server_final!r}")
        check(
            base64.b64decode(server_final[2:]) == self.server_signature,
            "the server's signature does not verify",
        )


def exchange(sock, scram, start):
    """Sends `start` (CONNECT or AUTH 0x19), answers the challenge; returns the last packet."""
    sock.sendall(start)
    kind, reason, props = read_packet(sock)
    check(kind == 15 and reason == 0x18, f"expected AUTH 0x18, got type {kind} reason {reason}")
    check(props.get(0x15) == METHOD.encode(), f"AUTH method {props.get(0x15)!r}")
    sock.sendall(auth_packet(0x18, scram.final(props[0x16].decode())))
    return read_packet(sock)


def main(host, port, user, password, other_user, other_password):
    # CONNECT with SCRAM.
    sock = tcp_connect(host, port)
    scram = Scram(user, password)
    kind, reason, props = exchange(sock, scram, connect_packet("scram-py", scram.first()))
    check(kind == 2 and reason == 0, f"expected CONNACK 0, got type {kind} reason {reason}")
    check(props.get(0x15) == METHOD.encode(), f"CONNACK method {props.get(0x15)!r}")
    scram.verify(props[0x16].decode())
    log("connected with SCRAM-SHA-256; the server proved it knows the credentials")

    # Re-authenticate on the live connection.
    scram = Scram(user, password)
    kind, reason, props = exchange(sock, scram, auth_packet(0x19, scram.first()))
    check(kind == 15 and reason == 0, f"expected AUTH 0x00, got type {kind} reason {reason}")
    scram.verify(props[0x16].decode())
    sock.sendall(b"\xc0\x00")  # PINGREQ: still connected
    kind, _, _ = read_packet(sock)
    check(kind == 13, f"expected PINGRESP, got type {kind}")
    log("re-authenticated; the connection carries on")

    # A failed re-authentication ends the connection with DISCONNECT 0x87.
    scram = Scram(user, password + "-wrong")
    kind, reason, _ = exchange(sock, scram, auth_packet(0x19, scram.first()))
    check(kind == 14 and reason == 0x87, f"expected DISCONNECT 0x87, got type {kind} reason {reason}")
    check(sock.recv(1) == b"", "the connection stays open after a failed re-authentication")
    sock.close()
    log("a failed re-authentication got DISCONNECT 0x87 and the connection closed")

    # Re-authenticating with another method is a protocol error.
    sock = tcp_connect(host, port)
    scram = Scram(user, password)
    kind, reason, _ = exchange(sock, scram, connect_packet("scram-py-2", scram.first()))
    check(kind == 2 and reason == 0, f"CONNACK {reason}")
    sock.sendall(auth_packet(0x19, "n,,n=x,r=y", method="SCRAM-SHA-1"))
    kind, reason, _ = read_packet(sock)
    check(kind == 14 and reason == 0x82, f"expected DISCONNECT 0x82, got type {kind} reason {reason}")
    sock.close()
    log("re-authentication with another method got DISCONNECT 0x82")

    # Re-authenticating as another user (whose password is right) is refused: 0x87.
    sock = tcp_connect(host, port)
    scram = Scram(user, password)
    kind, reason, _ = exchange(sock, scram, connect_packet("scram-py-4", scram.first()))
    check(kind == 2 and reason == 0, f"CONNACK {reason}")
    scram = Scram(other_user, other_password)
    kind, reason, _ = exchange(sock, scram, auth_packet(0x19, scram.first()))
    check(kind == 14 and reason == 0x87, f"re-auth as another user: type {kind} reason {reason}")
    sock.close()
    log("re-authentication as another user got DISCONNECT 0x87")

    # A re-authentication left half done ends the connection within the connect timeout
    # (MQTT-4.12.1-2), although the client keeps pinging.
    sock = tcp_connect(host, port)
    scram = Scram(user, password)
    kind, reason, _ = exchange(sock, scram, connect_packet("scram-py-5", scram.first()))
    check(kind == 2 and reason == 0, f"CONNACK {reason}")
    scram = Scram(user, password)
    sock.sendall(auth_packet(0x19, scram.first()))
    kind, reason, _ = read_packet(sock)
    check(kind == 15 and reason == 0x18, f"expected the challenge, got type {kind} reason {reason}")
    started = time.monotonic()
    while True:
        check(time.monotonic() - started < 10, "the half-done re-authentication was never ended")
        sock.sendall(b"\xc0\x00")  # PINGREQ
        kind, reason, _ = read_packet(sock)
        if kind == 14:
            check(reason == 0x87, f"DISCONNECT reason {reason}")
            break
        time.sleep(0.2)
    log(f"a half-done re-authentication was ended after {time.monotonic() - started:.1f} s")
    sock.close()

    # Without an authentication method there is no way in (3.1.1: CONNACK 0x05).
    sock = tcp_connect(host, port)
    variable = string("MQTT") + bytes([4, 0x02]) + (30).to_bytes(2, "big")
    sock.sendall(packet(0x10, variable + string("plain-311")))
    check(recv(sock, 4) == b"\x20\x02\x00\x05", "a plain 3.1.1 CONNECT was not refused with 0x05")
    sock.close()
    log("a CONNECT without the method is refused while SCRAM is configured")

    # A wrong password at CONNECT gets CONNACK 0x87.
    sock = tcp_connect(host, port)
    scram = Scram(user, "not-" + password)
    kind, reason, _ = exchange(sock, scram, connect_packet("scram-py-3", scram.first()))
    check(kind == 2 and reason == 0x87, f"expected CONNACK 0x87, got type {kind} reason {reason}")
    sock.close()
    log("a wrong password got CONNACK 0x87")


if __name__ == "__main__":
    run(main, budget_seconds=45, optional_args=("USER", "PASSWORD", "OTHER_USER", "OTHER_PASSWORD"))
