-- One read-only transaction with one snapshot for every table read, so the audit rows,
-- the sessions and Vault's tables agree with each other and with now(). A write in it
-- fails on the server, whatever the role may do.
begin transaction isolation level repeatable read, read only
