-- MRNs are unique per assigning authority (issuer): two facilities' `00123` are two
-- patients. `issuer` names the authority (`[[patients.issuers]]`); NULL is the archive's
-- default issuer (`patients.default_issuer`), which every patient before this migration
-- belongs to. Their blind index stays as it was: the default issuer's domain is the one the
-- index always used; another issuer's MRNs are indexed in a domain of their own.
-- An issuer's name is the facility's namespace id, not PHI.
ALTER TABLE patients ADD COLUMN issuer TEXT;
