-- Every search by someone other than records staff leaves out the documents flagged for QA
-- (records-only until a person has looked at them): a partial index keeps finding them from
-- scanning the whole documents table on each search.
CREATE INDEX documents_records_only ON documents(id)
    WHERE qa_reason IS NOT NULL AND status != 'deleted';
