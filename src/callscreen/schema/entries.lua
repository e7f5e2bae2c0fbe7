-- callscreen entries: every admin change to the entries of one list, in one atomic
-- call, keeping the list's per-status counts and its expiry index exact.
--
-- KEYS[1]  the list's counts hash (fields p, a, P, d: entries by stored status)
-- KEYS[2]  the list's expiry index (zset: member -> expiry, active entries with an expiry)
--          (and, named from the list id KEYS[1] ends with, its status indexes: rec_index
--          of record.lua; and the holders index, which names the list for each of its
--          entries: lookup_listed and lookup_unlisted of lookuplib.lua)
-- ARGV[1]  op: upsert | remove | restore | approve | unapprove | purge | mark
-- ARGV[2]  base ("{cs}"), to read batch records
-- ARGV[3]  the op's batch id (remove: the removal batch; every op: the trail's item)
-- ARGV[4]  flags, one letter each:
--            r  upsert: a deleted entry is restored (else it is left alone: "skipped")
--            m  upsert: never demote (pending < active < permanent)
--            k  upsert: an empty expiry or external id keeps the stored one, and a
--               batch without a reason keeps the entry's batch (its reason, who, when)
--            (upsert: an existing entry keeps its creation batch whatever the flags;
--            a permanent entry is never written: "permanent-unchanged")
--            P  approve: approve permanently
--            l  lenient: a missing or ineligible entry is "skipped" instead of refused
-- ARGV[5..] one group per entry: hash key, field, member (its name in the expiry index
--          and in refusals: "BUCKET:FIELD" or "p:DIGITS"), and for upsert the new
--          record, for purge the removal batch id the entry must still carry.
--
-- Records are "s;batch;expires;removal;trail;extid", read and written by the
-- functions of record.lua (put before this script): parsed, a record is f[1..6] in
-- that order. Every change an entry goes through is one item of its trail (code and
-- batch: who, when), so the entry tells its own history; ARGV[3] is that batch for
-- remove, restore, approve and unapprove (without it no item is written), and an
-- upsert's is the batch of its new record. Returns
-- {"ok", outcome...} with one outcome per entry, or, when a rule forbids the change,
-- {"refused", member, why, ...} having changed nothing. Outcomes: added, updated,
-- restored, unchanged, permanent-unchanged, skipped, removed, approved, unapproved,
-- purged, marked.
--
-- Permanent means frozen: a permanently approved entry's status, reason, expiry and
-- external id never change again. An upsert of one (an add, an opt-out, the outcome
-- watcher) writes nothing and says "permanent-unchanged"; remove and unapprove refuse
-- it (lenient: "skipped"); a permanent approval clears the entry's expiry. import.lua,
-- the bulk writer, follows the same rule.

local counts, expiring = KEYS[1], KEYS[2]
local list_id = string.match(counts, '(%d+)$')
local op, base, batch, flags = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local restore = string.find(flags, 'r', 1, true) ~= nil
local monotonic = string.find(flags, 'm', 1, true) ~= nil
local keep = string.find(flags, 'k', 1, true) ~= nil
local permanent = string.find(flags, 'P', 1, true) ~= nil
local lenient = string.find(flags, 'l', 1, true) ~= nil
local width = (op == 'upsert' or op == 'purge') and 4 or 3
local first = 5

local function indexed(f)
  return f[1] == 'a' and f[3] ~= ''
end

-- write record f at (key, field), old being the parsed previous record or nil
local function write(key, field, member, old, f)
  redis.call('HSET', key, field, rec_encode(f))
  rec_index(base, list_id, member, old and old[1] or nil, f[1])
  -- a new entry: the holders index must name its list (lookuplib.lua)
  if not old then lookup_listed(base, list_id, string.match(member, '^[^:]+'), field) end
  if old then
    if old[1] ~= f[1] then
      redis.call('HINCRBY', counts, old[1], -1)
      redis.call('HINCRBY', counts, f[1], 1)
    end
  else
    redis.call('HINCRBY', counts, f[1], 1)
  end
  if indexed(f) then
    redis.call('ZADD', expiring, tonumber(f[3]), member)
  elseif old and indexed(old) then
    redis.call('ZREM', expiring, member)
  end
end

-- the reason and source of a batch, read once per batch id
local batches = {}
local function batch_of(id)
  if id == '' then return { '', '' } end
  if batches[id] == nil then
    local b = tonumber(id)
    local raw = redis.call('HGET', base .. K_BATCH .. string.format('%.0f', math.floor(b / BATCH_BUCKET)),
      string.format('%.0f', b % BATCH_BUCKET))
    local value = { '', '' }
    if raw then
      local ok, data = pcall(cjson.decode, raw)
      if ok and type(data) == 'table' then
        value = { tostring(data['r'] or ''), tostring(data['s'] or '') }
      end
    end
    batches[id] = value
  end
  return batches[id]
end

local function same_batch_text(a, b)
  if a == b then return true end
  local x, y = batch_of(a), batch_of(b)
  return x[1] == y[1] and x[2] == y[2]
end

local rank = { p = 1, a = 2, P = 3 }

-- pass 1: read every record; refuse before writing anything
local olds, refused = {}, {}
for i = first, #ARGV, width do
  local raw = redis.call('HGET', ARGV[i], ARGV[i + 1])
  local old = raw and rec_parse(raw) or false
  olds[#olds + 1] = old
  local why = nil
  if op ~= 'upsert' and op ~= 'purge' then
    if not old then
      why = 'missing'
    elseif old[1] == 'P' and (op == 'remove' or op == 'unapprove') then
      why = 'permanent'
    elseif old[1] == 'd' and (op == 'approve' or op == 'unapprove') then
      why = 'deleted'
    end
  end
  if why and not lenient then
    refused[#refused + 1] = ARGV[i + 2]
    refused[#refused + 1] = why
  end
end
if #refused > 0 then
  table.insert(refused, 1, 'refused')
  return refused
end

-- pass 2: write
local out = { 'ok' }
local n = 0
for i = first, #ARGV, width do
  n = n + 1
  local key, field, member = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local old = olds[n]
  local outcome = 'unchanged'
  if op == 'upsert' then
    local f = rec_parse(ARGV[i + 3])
    local change = f[2]  -- the trail's item names this batch, even if f keeps old's
    if not old then
      if f[1] == 'P' then f[3] = '' end
      rec_new(f)
      write(key, field, member, nil, f)
      outcome = 'added'
    elseif old[1] == 'P' then
      outcome = 'permanent-unchanged'  -- frozen: nothing of it changes, whatever the flags
    elseif old[1] == 'd' and not restore then
      outcome = 'skipped'
    else
      if monotonic and rank[old[1]] and rank[f[1]] and rank[old[1]] > rank[f[1]] then
        f[1] = old[1]
      end
      if keep then
        if f[3] == '' then f[3] = old[3] end
        if f[6] == '' then f[6] = old[6] end
        if batch_of(f[2])[1] == '' and batch_of(old[2])[1] ~= '' then f[2] = old[2] end
      end
      if f[1] == 'P' then f[3] = '' end
      f[4] = ''
      rec_inherit(f, old)
      if old[1] ~= 'd' and f[1] == old[1] and f[3] == old[3] and f[6] == old[6]
          and same_batch_text(f[2], old[2]) then
        outcome = 'unchanged'
      else
        rec_stamp(f, (old[1] == 'd') and 'r' or 'u', change)
        write(key, field, member, old, f)
        outcome = (old[1] == 'd') and 'restored' or 'updated'
      end
    end
  elseif not old then
    outcome = 'skipped'
  elseif op == 'remove' then
    if old[1] == 'P' then
      outcome = 'skipped'
    elseif old[1] ~= 'd' then
      local f = { 'd', old[2], old[3], batch, old[5], old[6] }
      rec_stamp(f, 'd', batch)
      write(key, field, member, old, f)
      outcome = 'removed'
    end
  elseif op == 'restore' then
    if old[1] == 'd' then
      local f = { 'a', old[2], old[3], '', old[5], old[6] }
      rec_stamp(f, 'r', batch)
      write(key, field, member, old, f)
      outcome = 'restored'
    end
  elseif op == 'approve' then
    local target = permanent and 'P' or 'a'
    if old[1] == 'd' then
      outcome = 'skipped'
    elseif old[1] ~= 'P' and old[1] ~= target then
      local f = { target, old[2], old[3], '', old[5], old[6] }
      if target == 'P' then f[3] = '' end  -- a permanent entry has no expiry
      rec_stamp(f, target, batch)
      write(key, field, member, old, f)
      outcome = 'approved'
    end
  elseif op == 'unapprove' then
    if old[1] == 'P' or old[1] == 'd' then
      outcome = 'skipped'
    elseif old[1] == 'a' then
      local f = { 'p', old[2], old[3], '', old[5], old[6] }
      rec_stamp(f, 'p', batch)
      write(key, field, member, old, f)
      outcome = 'unapproved'
    end
  elseif op == 'mark' then
    -- schema 3 (services.migrations): a pending entry written before trails, with no
    -- trail, is taken as never enforced yet (its review is still to come)
    if old[1] == 'p' and string.match(old[5], '^%d*$') then
      local f = { old[1], old[2], old[3], old[4], old[5] .. '~', old[6] }
      write(key, field, member, old, f)
      outcome = 'marked'
    end
  elseif op == 'purge' then
    if old[1] == 'd' and old[4] == ARGV[i + 3] then
      redis.call('HDEL', key, field)
      lookup_unlisted(base, list_id, string.match(member, '^[^:]+'), field)
      redis.call('HINCRBY', counts, 'd', -1)
      rec_index(base, list_id, member, 'd', nil)
      outcome = 'purged'
    else
      outcome = 'skipped'
    end
  else
    return redis.error_reply('unknown op ' .. op)
  end
  out[#out + 1] = outcome
end
return out
