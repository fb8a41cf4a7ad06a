"""A receiving system for the archive's MDM notifications: an MLLP listener that reads each
message with hl7apy (strictly validated against the HL7 v2.5 message structure), prints what
it says as a JSON line, and answers it with an ACK built by hl7apy.

Usage: receiver.py HOST PORT [CERT KEY] (with CERT and KEY: MLLP over TLS)
Prints `{"listening": PORT}` first (PORT 0 picks a free one). Every message is answered AA,
except one that does not validate, printed as `{"invalid": REASON}` and answered AE.
"""
import json
import socket
import ssl
import sys

from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.core import Message
from hl7apy.parser import parse_message

START, END = b"\x0b", b"\x1c\x0d"


def segment(element, name):
    """The first segment called `name` in the message or one of its groups."""
    for child in element.children:
        if child.name == name:
            return child
        if child.classname == "Group":
            found = segment(child, name)
            if found is not None:
                return found
    return None


def read(text):
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT, find_groups=True)
    message.validate()
    txa, obx = segment(message, "TXA"), segment(message, "OBX")
    return message, {
        "type": message.msh.msh_9.msh_9_1.value + "^" + message.msh.msh_9.msh_9_2.value,
        "structure": message.msh.msh_9.msh_9_3.value,
        "control_id": message.msh.msh_10.value,
        "mrn": segment(message, "PID").pid_3.cx_1.value,
        "issuer": segment(message, "PID").pid_3.cx_4.value,
        "document": txa.txa_12.ei_1.value,
        "related": txa.txa_13.ei_1.value,
        "availability": txa.txa_19.value,
        "url": obx.obx_5.value.split("^")[0] if obx is not None else None,
        "text": text,
    }


def ack(message, code):
    answer = Message("ACK", version="2.5")
    answer.msh.msh_3 = "EHR"
    answer.msh.msh_4 = "HOSPITAL"
    answer.msh.msh_5 = message.msh.msh_3.value
    answer.msh.msh_6 = message.msh.msh_4.value
    answer.msh.msh_9 = "ACK^%s^ACK" % message.msh.msh_9.msh_9_2.value
    answer.msh.msh_10 = "ACK-" + message.msh.msh_10.value
    answer.msh.msh_11 = "P"
    answer.msa.msa_1 = code
    answer.msa.msa_2 = message.msh.msh_10.value
    return answer.to_er7().encode()


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    tls = None
    if len(sys.argv) > 4:
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(sys.argv[3], sys.argv[4])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((host, port))
    server.listen(4)
    print(json.dumps({"listening": server.getsockname()[1]}), flush=True)
    while True:
        connection, _ = server.accept()
        if tls is not None:
            try:
                connection = tls.wrap_socket(connection, server_side=True)
            except (ssl.SSLError, OSError):
                connection.close()
                continue
        data = b""
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            data += chunk
            while START in data and END in data[data.index(START):]:
                start = data.index(START)
                end = data.index(END, start)
                text = data[start + 1 : end].decode()
                data = data[end + 2 :]
                try:
                    message, seen = read(text)
                    code = "AA"
                except Exception as error:  # a message that is not valid HL7 v2.5
                    message = parse_message(text, find_groups=False)
                    seen = {"invalid": "%s: %s" % (type(error).__name__, error), "text": text}
                    code = "AE"
                print(json.dumps(seen), flush=True)
                connection.sendall(START + ack(message, code) + END)
        connection.close()


if __name__ == "__main__":
    main()
