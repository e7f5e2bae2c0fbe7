-- callscreen import: merge imported rows into one list, and the --replace sweep.
-- Every write adjusts the list's per-status counts in the same call, so they stay exact.
-- Lua 5.1 (Redis 6.2+): no goto, hence one function per row with early returns.
--
-- Records are "s;batch;expires;removal;trail;extid", read and written by the
-- functions of record.lua (put before this script), which also keep each entry's trail
-- of transitions: a new entry's trail holds its creation batch when an export's
-- created_by/created_at give one other than its batch, an entry the import changes keeps
-- its own and gains an item (u updated, r restored, d removed by --replace) naming the
-- import's batch. Status codes: p pending, a active, P permanent, d deleted.
--
-- The import's temporary keys, under {cs}:imp:TOKEN (keys.Keys.import_temp; the importer
-- deletes them when it is done, or the next import does if it died; see importer.py):
--   :b        hash  batch spec ("op\31reason\31source\31by\31at") -> batch id, so each
--                   distinct reason (and source/by/at) gets exactly one batch per import
--   :s:LOC    hash  the entries of the file seen so far (LOC = bucket number, or "p" for
--                   prefixes; field as in the list): duplicates in the file are found
--                   there (the first row wins), and --replace sweeps what is not there.
--
-- Every write also keeps the list's expiry index ({cs}:x:L: active entries with an
-- expiry, member "BUCKET:FIELD" or "p:DIGITS") and its status indexes ({cs}:st:L:S,
-- record.lua's rec_index) exact, as entries.lua does, and a permanent entry carries no
-- expiry; a new entry is added to the holders index (lookuplib.lua's lookup_listed).
--
-- Mode "merge"
--   KEYS   counts hash, expiry index, batch sequence, intern hash (:b)
--   ARGV   "merge", base, list id, token, default status (p/a/P),
--          restore ("1"/"0"), now (epoch seconds), arity (5 or 8), number of specs S,
--          S x 6 spec fields (op, reason, source, by, at, inherit "1"/"0"),
--          then rows of `arity` fields:
--            loc, field, spec index (1-based), expires ("" = not given), extid ("" = not given)
--            [, status ("" = default; p/a/P/d), removal spec index ("" = none),
--             creation spec index ("" = the row's spec; used for a new entry only)]
--   An "inherit" spec stands for a row with no reason: a new entry gets an empty reason,
--   an existing one keeps its reason (a batch is derived with the old reason).
--   Returns {added, updated, restored, unchanged, deleted_kept, duplicates, pending,
--   enforced, permanent_unchanged}: enforced counts the entries the call made enforced
--   at `now` (new, or pending, removed or expired before, and active or permanent
--   after); permanent_unchanged the rows for permanent entries, which are frozen (their
--   reason, expiry and external id never change: entries.lua's rule) and not written.
--
-- Mode "sweep" (after a --replace import: soft-remove live entries the file lacked;
-- permanent ones are kept)
--   KEYS   counts hash, expiry index
--   ARGV   "sweep", base, list id, token, removal batch id, then bucket numbers
--   Returns {removed, kept_permanent}. Removal batch id "0": count only, write nothing
--   (the --max-remove guard asks first).
--
-- Mode "sweep_p" (the same for prefixes, one HSCAN page a call)
--   KEYS   counts hash, expiry index
--   ARGV   "sweep_p", base, list id, token, removal batch id, cursor, count
--   Returns {removed, kept_permanent, next cursor}.

local mode, base, list_id, token = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local counts_key, expiring = KEYS[1], KEYS[2]
local ebase = base .. K_EXACT .. list_id .. ':'
local pkey = base .. K_PREFIXES .. list_id
local seen_base = base .. K_IMP .. token .. K_IMP_SEEN

local delta = { p = 0, a = 0, P = 0, d = 0 }
local function flush_counts()
  for code, n in pairs(delta) do
    if n ~= 0 then redis.call('HINCRBY', counts_key, code, n) end
  end
end

-- the entry's member in the expiry index (entries.expiry_member): "BUCKET:FIELD" for
-- an exact number, "p:DIGITS" for a prefix - that is, loc:field
local function member(loc, field)
  return loc .. ':' .. field
end

-- keep the expiry index and the status indexes (rec_index, record.lua) right for a
-- record going from (os, ox) to (ns, nx); os '' for a new entry
local function reindex(loc, field, os, ox, ns, nx)
  rec_index(base, list_id, member(loc, field), os, ns)
  local was = os == 'a' and ox ~= ''
  local now = ns == 'a' and nx ~= ''
  if now then
    if not was or ox ~= nx then redis.call('ZADD', expiring, tonumber(nx), member(loc, field)) end
  elseif was then
    redis.call('ZREM', expiring, member(loc, field))
  end
end

local function batch_location(id)
  local n = tonumber(id)
  return base .. K_BATCH .. string.format('%.0f', math.floor(n / BATCH_BUCKET)), string.format('%.0f', n % BATCH_BUCKET)
end

if mode == 'sweep' or mode == 'sweep_p' then
  local rid = ARGV[5]
  local removed, kept = 0, 0
  local function sweep(loc, key, flat)
    if #flat == 0 then return end
    local seen_set = {}
    local seen_flat = redis.call('HKEYS', seen_base .. loc)
    for i = 1, #seen_flat do seen_set[seen_flat[i]] = true end
    for i = 1, #flat, 2 do
      local field, rec = flat[i], flat[i + 1]
      if not seen_set[field] then
        local f = rec_parse(rec)
        local s, x = f[1], f[3]
        if s == 'P' then
          kept = kept + 1
        elseif s == 'p' or s == 'a' then
          if rid ~= '0' then
            f[1], f[4] = 'd', rid
            rec_stamp(f, 'd', rid)
            redis.call('HSET', key, field, rec_encode(f))
            reindex(loc, field, s, x, 'd', x)
            delta[s] = delta[s] - 1
            delta.d = delta.d + 1
          end
          removed = removed + 1
        end
      end
    end
  end
  if mode == 'sweep' then
    for i = 6, #ARGV do
      local key = ebase .. ARGV[i]
      sweep(ARGV[i], key, redis.call('HGETALL', key))
    end
    flush_counts()
    return { removed, kept }
  end
  local page = redis.call('HSCAN', pkey, ARGV[6], 'COUNT', ARGV[7])
  sweep('p', pkey, page[2])
  flush_counts()
  return { removed, kept, page[1] }
end

-- mode "merge"
local bseq, intern_key = KEYS[3], KEYS[4]
local default_status, restore, now = ARGV[5], ARGV[6] == '1', tonumber(ARGV[7])
local arity, nspecs = tonumber(ARGV[8]), tonumber(ARGV[9])
local rank = { p = 1, a = 2, P = 3 }

local specs = {}
for k = 1, nspecs do
  local j = 10 + (k - 1) * 6
  specs[k] = {
    op = ARGV[j], r = ARGV[j + 1], s = ARGV[j + 2], by = ARGV[j + 3], at = ARGV[j + 4],
    inherit = ARGV[j + 5] == '1',
  }
end
local first_row = 10 + nspecs * 6

local function intern(op, r, s, by, at)
  local k = op .. '\31' .. r .. '\31' .. s .. '\31' .. by .. '\31' .. at
  local id = redis.call('HGET', intern_key, k)
  if not id then
    id = tostring(redis.call('INCR', bseq))
    local json = '{"op":' .. cjson.encode(op) .. ',"r":' .. cjson.encode(r) .. ',"s":' ..
      cjson.encode(s) .. ',"by":' .. cjson.encode(by) .. ',"at":' .. at .. '}'
    local bkey, bfield = batch_location(id)
    redis.call('HSET', bkey, bfield, json)
    redis.call('HSET', intern_key, k, id)
  end
  return id
end

-- the batch of spec `si` for an entry whose current reason is `old_reason`
local spec_batch_cache = {}
local function spec_batch(si, old_reason)
  local spec = specs[tonumber(si)]
  local reason = spec.r
  local ck = si
  if spec.inherit then
    reason = old_reason
    ck = si .. '\31' .. old_reason
  end
  local id = spec_batch_cache[ck]
  if id == nil then
    id = intern(spec.op, reason, spec.s, spec.by, spec.at)
    spec_batch_cache[ck] = id
  end
  return id
end

local reason_cache = {}
local function reason_of(bid)
  local r = reason_cache[bid]
  if r == nil then
    r = ''
    if bid ~= '' then
      local raw = redis.call('HGET', batch_location(bid))
      if raw then
        local ok, data = pcall(cjson.decode, raw)
        if ok and type(data) == 'table' and type(data.r) == 'string' then r = data.r end
      end
    end
    reason_cache[bid] = r
  end
  return r
end

local added, updated, restored, unchanged, deleted_kept, dups, pending = 0, 0, 0, 0, 0, 0, 0
local enforced, permanent_unchanged = 0, 0

-- whether a record with status s and expiry x takes part in screening now
local function live(s, x)
  return s == 'P' or (s == 'a' and (x == '' or tonumber(x) > now))
end

-- an entry added or restored with status s: pending, or enforced from now on
local function tally(s, x)
  if s == 'p' then
    pending = pending + 1
  elseif live(s, x) then
    enforced = enforced + 1
  end
end

local function merge_row(loc, field, si, x, e, st, rsi, csi)
  local key = (loc == 'p') and pkey or (ebase .. loc)
  local seen = seen_base .. loc
  if redis.call('HSETNX', seen, field, '1') == 0 then
    dups = dups + 1
    return
  end
  local target = default_status
  if st ~= '' then target = st end
  local old = redis.call('HGET', key, field)
  if not old then
    local rid = ''
    if target == 'd' and rsi ~= '' then rid = spec_batch(rsi, '') end
    if target == 'P' then x = '' end
    local bid = spec_batch(si, '')
    local c = ''
    if csi ~= '' and csi ~= si then c = spec_batch(csi, '') end
    local f = { target, bid, x, rid, c, e }
    rec_new(f)
    -- an export's entry created by another change than the one that gave its reason
    -- (and, removed, by another than its removal): those changes are its trail
    if string.match(f[5], '^%d') then rec_stamp(f, 'u', bid) end
    rec_stamp(f, 'd', rid)
    redis.call('HSET', key, field, rec_encode(f))
    lookup_listed(base, list_id, loc, field)  -- the holders index names the list (lookuplib.lua)
    reindex(loc, field, '', '', target, x)
    delta[target] = delta[target] + 1
    added = added + 1
    tally(target, x)
    return
  end
  local of = rec_parse(old)
  local os, ob, ox, orem, oe = of[1], of[2], of[3], of[4], of[6]
  if x == '' then x = ox end
  if e == '' then e = oe end
  if os == 'd' then
    if not restore or target == 'd' then
      deleted_kept = deleted_kept + 1
      return
    end
    if target == 'P' then x = '' end
    local bid = spec_batch(si, reason_of(ob))
    local f = { target, bid, x, '', '', e }
    rec_inherit(f, of)
    rec_stamp(f, 'r', bid)
    redis.call('HSET', key, field, rec_encode(f))
    reindex(loc, field, 'd', ox, target, x)
    delta.d = delta.d - 1
    delta[target] = delta[target] + 1
    restored = restored + 1
    tally(target, x)
    return
  end
  -- a permanent entry is frozen: the row changes nothing of it, whatever it says
  if os == 'P' then
    permanent_unchanged = permanent_unchanged + 1
    return
  end
  -- a live entry: never demoted, never removed by an import row (a "deleted" row of
  -- an export file only recreates a removed entry that is missing)
  if target == 'd' then
    unchanged = unchanged + 1
    if os == 'p' then pending = pending + 1 end
    return
  end
  local ns = os
  if rank[target] > rank[os] then ns = target end
  if ns == 'P' then x = '' end
  local spec = specs[tonumber(si)]
  if ns == os and x == ox and e == oe and (spec.inherit or spec.r == reason_of(ob)) then
    unchanged = unchanged + 1
    if ns == 'p' then pending = pending + 1 end
    return
  end
  local bid = spec_batch(si, reason_of(ob))
  local f = { ns, bid, x, orem, '', e }
  rec_inherit(f, of)
  rec_stamp(f, 'u', bid)
  redis.call('HSET', key, field, rec_encode(f))
  reindex(loc, field, os, ox, ns, x)
  if ns ~= os then
    delta[os] = delta[os] - 1
    delta[ns] = delta[ns] + 1
  end
  updated = updated + 1
  if ns == 'p' then
    pending = pending + 1
  elseif live(ns, x) and not live(os, ox) then
    enforced = enforced + 1
  end
end

if arity == 8 then
  for i = first_row, #ARGV, 8 do
    merge_row(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], ARGV[i + 5],
      ARGV[i + 6], ARGV[i + 7])
  end
else
  for i = first_row, #ARGV, 5 do
    merge_row(ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3], ARGV[i + 4], '', '', '')
  end
end
flush_counts()
return { added, updated, restored, unchanged, deleted_kept, dups, pending, enforced,
  permanent_unchanged }
