-- The labels of the device-session records the report's token uses are attributed
-- to, so a token row names its device even where the record is outside the scope's
-- list of records (a window report of a record registered long before).
select device_session_id, label
from device_sessions
where device_session_id in (select device_session_id from report_uses)
order by device_session_id
