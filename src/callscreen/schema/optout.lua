-- callscreen opt-out: find (or create) the do-not-call list and record the opt-out's
-- batch, in one round trip. The entry itself is then written by entries.lua, the only
-- writer of entry records.
--
-- KEYS[1]  the meta hash (declared for the slot; every other key shares its hash tag)
-- ARGV     base ("{cs}"), list name, description, now (epoch seconds, as repr(float)),
--          by, batch record (JSON, as table.Batch.encode), the trail's MINID (records
--          older may go, XADD MINID ~; "": never trimmed, services.audit.trim_floor),
--          default buckets, schema version, digits (E.164 without '+')
--
-- A missing list is created as Table.create_list does it: global, action block,
-- direction both, with "create" records in its trail and in the admin trail.
-- A number the list already enforces (active and not expired, or permanent) writes
-- nothing: batch id 0 is returned, with the entry's record.
-- Returns {list id, the list's action, buckets, batch id, 1 if the list was created,
-- the existing record or ""}.

local meta = KEYS[1]
local base, name, description, now, by = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local batch_json, minid = ARGV[6], ARGV[7]

redis.call('HSETNX', meta, 'buckets', ARGV[8])
redis.call('HSETNX', meta, 'schema', ARGV[9])
local buckets = redis.call('HGET', meta, 'buckets')

local id = redis.call('HGET', base .. K_LISTS, name)
local created = 0
if not id then
  id = tostring(redis.call('INCR', base .. K_LSEQ))
  redis.call('HSET', base .. K_LISTS, name, id)
  redis.call('HSET', base .. K_LIST .. id,
    'name', name, 'action', 'block', 'direction', 'both', 'scope', 'global',
    'description', description, 'created_at', now, 'created_by', by,
    'updated_at', now, 'updated_by', by)
  redis.call('SADD', base .. K_GLOBAL, id)
  local detail = 'block, both, global'
  for _, stream in ipairs({ base .. K_HIST_LIST .. id, base .. K_HIST }) do
    if minid ~= '' then
      redis.call('XADD', stream, 'MINID', '~', minid, '*',
        'op', 'create', 'by', by, 'list', name, 'd', detail)
    else
      redis.call('XADD', stream, '*', 'op', 'create', 'by', by, 'list', name, 'd', detail)
    end
  end
  created = 1
  lookup_rebuild(base)  -- the new list screens calls from now on (lookuplib.lua)
end
local action = redis.call('HGET', base .. K_LIST .. id, 'action') or 'block'

if created == 0 then
  -- buckets is a power of two, so these divisions are exact on Lua's doubles
  local n, nb = tonumber(ARGV[10]), tonumber(buckets)
  local rec = redis.call('HGET', base .. K_EXACT .. id .. ':' .. string.format('%.0f', n % nb),
    string.format('%.0f', math.floor(n / nb)))
  if rec then
    local s = string.sub(rec, 1, 1)
    local x = string.match(rec, '^a;%d+;(%d+)')
    if s == 'P' or (s == 'a' and (x == nil or tonumber(x) > tonumber(now))) then
      return { tonumber(id), action, tonumber(buckets), 0, 0, rec }
    end
  end
end

local batch = redis.call('INCR', base .. K_BSEQ)
redis.call('HSET', base .. K_BATCH .. string.format('%.0f', math.floor(batch / BATCH_BUCKET)),
  string.format('%.0f', batch % BATCH_BUCKET), batch_json)

return { tonumber(id), action, tonumber(buckets), batch, created, '' }
