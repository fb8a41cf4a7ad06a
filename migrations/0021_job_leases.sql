-- A claimed job or batch is leased: its worker renews the lease while it works, and one
-- whose lease ran out (its worker died) goes back to the queue for another to claim.
ALTER TABLE jobs ADD COLUMN lease_expires TEXT;
ALTER TABLE batches ADD COLUMN lease_expires TEXT;
