-- The window of use times this check judges: [since, until), an open end null. Held as
-- a one-row relation so that queries materialized as views can read it.
select cast($since as timestamptz) as since, cast($until as timestamptz) as until
