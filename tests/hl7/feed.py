"""Sends HL7 v2 messages built with hl7apy to an MLLP listener, one after the other (each
after the previous ACK), and prints the ACKs read back with hl7apy, as JSON.

Usage: feed.py HOST PORT [CAFILE] < steps.json (with CAFILE, over TLS trusting it), where
steps is a list of
  {"kind": "adt", "event", "control_id", "facility", "mrn", "issuer"?, "family", "given", "birth",
   "visit"?, "admitted"?, "class"?}              (PV1-19, PV1-44, PV1-2)
  {"kind": "merge", "control_id", "facility", "mrn", "prior_mrn", "issuer", "family", "given"}
                                                   (ADT^A40: prior_mrn merged into mrn)
  {"kind": "oru", "control_id", "facility"}       (a message type the archive does not take)
  {"kind": "raw", "text"}                          (sent framed as it is)
"""
import json
import socket
import ssl
import sys

from hl7apy.core import Message
from hl7apy.parser import parse_message

START, END = b"\x0b", b"\x1c\x0d"


def adt(step):
    message = Message("ADT_A01", version="2.5")
    message.msh.msh_3 = "REGISTRATION"
    message.msh.msh_4 = step["facility"]
    message.msh.msh_5 = "CHARTVAULT"
    message.msh.msh_6 = "ARCHIVE"
    message.msh.msh_9 = "ADT^%s^ADT_A01" % step["event"]
    message.msh.msh_10 = step["control_id"]
    message.msh.msh_11 = "P"
    message.evn.evn_2 = "20261207120000"
    message.pid.pid_3 = "%s^^^%s^MR" % (step["mrn"], step.get("issuer", ""))
    message.pid.pid_5 = "%s^%s" % (step["family"], step["given"])
    message.pid.pid_7 = step["birth"]
    message.pv1.pv1_2 = step.get("class", "O")
    if "visit" in step:
        message.pv1.pv1_19 = "%s^^^%s^VN" % (step["visit"], step.get("issuer", ""))
        message.pv1.pv1_44 = step.get("admitted", "")
    return message.to_er7().encode()


def merge(step):
    message = Message("ADT_A39", version="2.5")
    message.msh.msh_3 = "REGISTRATION"
    message.msh.msh_4 = step["facility"]
    message.msh.msh_5 = "CHARTVAULT"
    message.msh.msh_6 = "ARCHIVE"
    message.msh.msh_9 = "ADT^A40^ADT_A39"
    message.msh.msh_10 = step["control_id"]
    message.msh.msh_11 = "P"
    message.evn.evn_2 = "20261207120000"
    patient = message.add_group("ADT_A39_PATIENT")
    patient.pid.pid_3 = "%s^^^%s^MR" % (step["mrn"], step["issuer"])
    patient.pid.pid_5 = "%s^%s" % (step["family"], step["given"])
    patient.mrg.mrg_1 = "%s^^^%s^MR" % (step["prior_mrn"], step["issuer"])
    return message.to_er7().encode()


def oru(step):
    message = Message("ORU_R01", version="2.5")
    message.msh.msh_3 = "LAB"
    message.msh.msh_4 = step["facility"]
    message.msh.msh_9 = "ORU^R01^ORU_R01"
    message.msh.msh_10 = step["control_id"]
    message.msh.msh_11 = "P"
    return message.to_er7().encode()


def send(sock, payload):
    sock.sendall(START + payload + END)
    data = b""
    while END not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise SystemExit("the listener closed the connection")
        data += chunk
    text = data[data.index(START) + 1 : data.index(END)].decode()
    ack = parse_message(text, find_groups=False)
    err = ack.err.err_8.value if ack.children.get("ERR") else ""
    return {
        "code": ack.msa.msa_1.value,
        "control_id": ack.msa.msa_2.value,
        "type": ack.msh.msh_9.value,
        "text": err,
    }


def main():
    host, port = sys.argv[1], int(sys.argv[2])
    steps = json.load(sys.stdin)
    answers = []
    sock = socket.create_connection((host, port), timeout=30)
    if len(sys.argv) > 3:
        context = ssl.create_default_context(cafile=sys.argv[3])
        sock = context.wrap_socket(sock, server_hostname=host)
    with sock:
        for step in steps:
            if step["kind"] == "adt":
                payload = adt(step)
            elif step["kind"] == "merge":
                payload = merge(step)
            elif step["kind"] == "oru":
                payload = oru(step)
            else:
                payload = step["text"].encode()
            answers.append(send(sock, payload))
    json.dump(answers, sys.stdout)


main()
