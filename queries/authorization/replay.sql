-- Rule 6: allowed token uses that Vault's authorization rules would have denied, as far
-- as the authorization history proves it. Audit logs start after most memberships
-- began, so only three things count as proof, and missing history proves nothing:
--
--   removed_from_workspace  the user's latest membership event in the workspace before
--                           `at` is a workspace.member.remove (removed, not added again);
--   grant_revoked           the secret was restricted at `at`, a grant of the user's on it
--                           was revoked and not granted again, no grant live at `at`
--                           permits the request (a write needs a write grant, a read any
--                           grant), and the user's latest role there is member or viewer;
--   viewer_wrote            the user's latest role in the workspace is viewer and the
--                           request is a write (any method but GET and HEAD): a viewer
--                           never writes, whatever grant it holds.
--
-- The same proof as AuthorizationState.proven_denial in vault_audit/backend, which the
-- simulator uses; tests/test_replay_agrees_with_backend.py holds the two to each other.
-- The user is the token's sub; the secret is the id in a `secret:<id>` resource; the
-- workspace is the use's workspace_id, else the id in a `workspace:<id>` resource,
-- else the workspace the secret was created in. "Before `at`" is strict: an event at the same
-- instant as the request may have been processed after it. Only uses whose user and
-- workspace (or secret) have a removal, a viewer role or a revoked grant are replayed
-- (uses/relevant.sql keeps the uses of users in authorization/watched_users.sql made
-- after their first such event).
with memberships as (
    select
        target_user_id as user_id,
        workspace_id,
        occurred_at as since,
        lead(occurred_at) over (
            partition by target_user_id, workspace_id order by occurred_at, id
        ) as until,
        type = 'workspace.member.remove' as removed,
        case when type = 'workspace.member.add' then role end as role
    from vault_events
    where type in ('workspace.member.add', 'workspace.member.remove')
      and target_user_id is not null
      -- An add that names no role grants nothing: the backend ignores it too.
      and (type = 'workspace.member.remove' or role is not null)
),

visibilities as (
    select
        secret_id,
        occurred_at as since,
        lead(occurred_at) over (partition by secret_id order by occurred_at, id) as until,
        visibility
    from vault_events
    where type in ('secret.create', 'secret.update') and visibility is not null
),

-- One row per grant event and permission it touches: a grant.create of read or write,
-- or a grant.revoke, which ends both permissions when it names neither.
grant_events as (
    select events.id, events.target_user_id, events.secret_id, events.occurred_at,
        events.type, permissions.permission
    from vault_events as events
    join (values ('read'), ('write')) as permissions (permission)
      on permissions.permission = events.permission
      or (events.type = 'grant.revoke'
          and coalesce(events.permission, '') not in ('read', 'write'))
    where events.type in ('grant.create', 'grant.revoke')
      and events.target_user_id is not null
      and events.secret_id is not null
),

grants as (
    select
        target_user_id as user_id,
        secret_id,
        permission,
        occurred_at as since,
        lead(occurred_at) over (
            partition by target_user_id, secret_id, permission order by occurred_at, id
        ) as until,
        type = 'grant.create' as live
    from grant_events
),

homes as (
    select secret_id, arg_min(workspace_id, (occurred_at, id)) as workspace_id
    from vault_events
    where type = 'secret.create' and secret_id is not null and workspace_id is not null
    group by secret_id
),

watched_memberships as (
    select distinct user_id, workspace_id
    from memberships
    where removed or role = 'viewer'
),

watched_grants as (
    select distinct user_id, secret_id from grants where not live
),

requests as (
    select
        request_id,
        used_at,
        method,
        path,
        workspace_id as use_workspace_id,
        resource,
        ip,
        user_agent,
        decision,
        token_sha256,
        sub as user_id,
        case when resource like 'secret:%' then substr(resource, 8) end as secret_id,
        case when resource like 'workspace:%' then substr(resource, 11) end as named_workspace,
        coalesce(upper(method) not in ('GET', 'HEAD'), false) as writes
    from relevant_uses
    where replay_watched
      and decision = 'allow'
      and (cast($since as timestamptz) is null or used_at >= cast($since as timestamptz))
      and (cast($until as timestamptz) is null or used_at < cast($until as timestamptz))
),

allowed_uses as (
    select
        requests.* exclude (use_workspace_id, named_workspace),
        coalesce(
            requests.use_workspace_id, nullif(requests.named_workspace, ''), homes.workspace_id
        ) as workspace_id
    from requests
    left join homes on homes.secret_id = requests.secret_id
    where coalesce(
        requests.use_workspace_id, nullif(requests.named_workspace, ''), homes.workspace_id
    ) is not null
),

candidates as (
    select *
    from allowed_uses
    where exists (
            select 1 from watched_memberships as watched
            where watched.user_id = allowed_uses.user_id
              and watched.workspace_id = allowed_uses.workspace_id
        )
       or exists (
            select 1 from watched_grants as watched
            where watched.user_id = allowed_uses.user_id
              and watched.secret_id = allowed_uses.secret_id
        )
),

membership_at_use as (
    select candidates.request_id, memberships.removed, memberships.role, memberships.since
    from candidates
    join memberships
      on memberships.user_id = candidates.user_id
     and memberships.workspace_id = candidates.workspace_id
     and memberships.since < candidates.used_at
     and (memberships.until is null or candidates.used_at <= memberships.until)
),

visibility_at_use as (
    select candidates.request_id, visibilities.visibility
    from candidates
    join visibilities
      on visibilities.secret_id = candidates.secret_id
     and visibilities.since < candidates.used_at
     and (visibilities.until is null or candidates.used_at <= visibilities.until)
),

grants_at_use as (
    select
        candidates.request_id,
        bool_or(grants.live) as any_live,
        bool_or(not grants.live) as any_revoked,
        bool_or(grants.live and grants.permission = 'write') as write_live,
        max(case when not grants.live then grants.since end) as revoked_at
    from candidates
    join grants
      on grants.user_id = candidates.user_id
     and grants.secret_id = candidates.secret_id
     and grants.since < candidates.used_at
     and (grants.until is null or candidates.used_at <= grants.until)
    group by candidates.request_id
),

replayed as (
    select
        candidates.*,
        membership.role,
        case
            when membership.removed then 'removed_from_workspace'
            when visibility.visibility = 'restricted'
                and grant_state.any_revoked
                and not (case when candidates.writes then grant_state.write_live
                              else grant_state.any_live end)
                and membership.role in ('member', 'viewer') then 'grant_revoked'
            when membership.role = 'viewer' and candidates.writes then 'viewer_wrote'
        end as denial,
        membership.since as membership_since,
        grant_state.revoked_at as grant_revoked_at
    from candidates
    left join membership_at_use as membership on membership.request_id = candidates.request_id
    left join visibility_at_use as visibility on visibility.request_id = candidates.request_id
    left join grants_at_use as grant_state on grant_state.request_id = candidates.request_id
)

select
    request_id,
    denial,
    case when denial = 'grant_revoked' then grant_revoked_at else membership_since end
        as denial_since,
    secret_id,
    role,
    -- The use itself, so that classify need not look it up again.
    used_at,
    method,
    path,
    resource,
    workspace_id,
    ip,
    user_agent,
    decision,
    token_sha256
from replayed
where denial is not null
