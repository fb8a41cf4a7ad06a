-- HL7 v2 messages applied from the inbound feed, by sending facility and message control id
-- (MSH-4, MSH-10): a message sent again is acknowledged and not applied twice. Written in the
-- transaction of the change the message made. No PHI: ids, types and acknowledgement codes.
CREATE TABLE hl7_inbound (
    sending_facility TEXT NOT NULL,
    control_id       TEXT NOT NULL,
    message_type     TEXT NOT NULL,
    ack_code         TEXT NOT NULL CHECK (ack_code IN ('AA', 'AE', 'AR')),
    received_at      TEXT NOT NULL,
    PRIMARY KEY (sending_facility, control_id)
);
