-- Helpers every ingest query uses, created as temporary macros on the connection.

-- Missing: null or only blanks.
create or replace temp macro va_blank(v) as v is null or trim(v) = '';

-- A time a log of this system can hold: from the Unix epoch to the year 9000. DuckDB
-- also parses `infinity` and years past 9999, which no report or output could show.
create or replace temp macro va_in_range(t) as
    case when t >= '1970-01-01 00:00:00+00'::timestamptz
        and t < '9000-01-01 00:00:00+00'::timestamptz then t end;

-- A time as the contract accepts it: RFC 3339 with any offset, or epoch seconds.
-- A time without an offset (Postgres `timestamp without time zone`) is read as UTC.
-- Null when missing, unparsable or out of range; callers tell missing apart with
-- va_blank. va_trimmed_time takes a value already trimmed of spaces (the access log's
-- fields are trimmed in Arrow: DuckDB's trim is its slowest string function).
create or replace temp macro va_trimmed_time(v) as
    va_in_range(case
        when v is null or v = '' then null
        when regexp_full_match(v, '-?[0-9]+(\.[0-9]+)?')
            then try(to_timestamp(try_cast(v as double)))
        -- RFC 3339 allows a lowercase t and z; only a value the first cast refused is
        -- cast again.
        else coalesce(try_cast(v as timestamptz), try_cast(upper(v) as timestamptz))
    end);

create or replace temp macro va_time(v) as va_trimmed_time(trim(v));

-- True when a present value is not a usable time.
create or replace temp macro va_bad_time(v) as not va_blank(v) and va_time(v) is null;

-- True for the text of a JSON object. The case keeps json_type off invalid text.
create or replace temp macro va_is_object(v) as
    case when json_valid(v) then json_type(v) = 'OBJECT' else false end;

-- base64url (no padding) to text, null when it is not base64 or not UTF-8.
create or replace temp macro va_b64url_text(s) as
    try(decode(from_base64(
        replace(replace(s, '-', '+'), '_', '/') || repeat('=', (4 - length(s) % 4) % 4)
    )));

-- Text with any JWT in it masked: an accepted record's path and user agent (clients
-- put tokens in query strings and odd user agents), and the quarantine's records.
-- A JWS starts with eyJ (base64url of '{"'), so only a text holding that pays for the
-- regular expression.
create or replace temp macro va_redact_jwts(v) as
    case
        when contains(v, 'eyJ') then regexp_replace(
            v, 'eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*', '[redacted token]', 'g'
        )
        else v
    end;

-- Text that may hold a token, fit for the quarantine: tokens and bearer values
-- masked, and long records cut. A CSV row names no keys, so any three dotted runs
-- of base64url of 8 characters or more count as a token there, whatever they start with.
create or replace temp macro va_mask(v) as
    left(
        regexp_replace(
            regexp_replace(
                va_redact_jwts(
                    regexp_replace(
                        v,
                        '("(token|authorization)"\s*:\s*")[^"]*',
                        '\1[redacted]',
                        'g'
                    )
                ),
                '[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*',
                '[redacted token]',
                'g'
            ),
            '([Bb][Ee][Aa][Rr][Ee][Rr])\s+[^\s",]+',
            '\1 [redacted]',
            'g'
        ),
        4000
    );
