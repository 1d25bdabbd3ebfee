-- Classified token uses in time order, each with the finding it belongs to (same
-- verdict, reason, device session, Supabase session and token).
select
    uses.request_id,
    uses.used_at,
    uses.verdict,
    uses.reason,
    uses.severity,
    uses.user_id,
    uses.supabase_session_id,
    uses.device_session_id,
    uses.revoked_at,
    uses.token_issued_at,
    uses.token_expires_at,
    uses.token_sha256,
    uses.explanation,
    findings.finding_id
from classified_uses as uses
join findings
  on findings.verdict = uses.verdict
 and findings.reason = uses.reason
 and findings.token_sha256 = uses.token_sha256
 and coalesce(findings.device_session_id, '') = coalesce(uses.device_session_id, '')
 and coalesce(findings.supabase_session_id, '') = coalesce(uses.supabase_session_id, '')
order by uses.used_at, uses.request_id
