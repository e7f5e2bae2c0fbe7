#!lua flags=no-writes
-- callscreen lookup: every entry that matches one number, in every list that
-- applies to one call, in one round trip.
--
-- KEYS[1]  the meta hash (declared so the script's slot is known; every other key
--          shares its hash tag)
-- ARGV     base ("{cs}"), direction, campaign ("" for none), now (epoch seconds),
--          digits (E.164 without '+'), all ("1": also entries that are not enforced)
--
-- Returns a flat array, six items a match:
--   list name, action, entry digits, "1" if a prefix, "r" if a registry listing, else
--   "0", entry record, batch JSON
-- A registry list (field "registry" of its hash: "us") holds no entries: one bit per
-- possible number of each exchange, {cs}:reg:ID:NPANXX, bit = the last four digits;
-- a listed number is reported as an active exact entry of the list's last load batch
-- (field "rbatch").
-- Which match decides is not chosen here: the precedence rules live in Python.

local base, dir, camp = ARGV[1], ARGV[2], ARGV[3]
local now, digits, all = tonumber(ARGV[4]), ARGV[5], ARGV[6] == '1'

local buckets = tonumber(redis.call('HGET', KEYS[1], 'buckets') or DEFAULT_BUCKETS)
local n = tonumber(digits)
-- buckets is a power of two, so these divisions are exact on Lua's doubles
local bucket = string.format('%.0f', n % buckets)
local field = string.format('%.0f', math.floor(n / buckets))

local ids = redis.call('SMEMBERS', base .. K_GLOBAL)
if camp ~= '' then
  local seen = {}
  for _, id in ipairs(ids) do seen[id] = true end
  for _, id in ipairs(redis.call('SMEMBERS', base .. K_CAMP .. camp)) do
    if not seen[id] then
      seen[id] = true
      ids[#ids + 1] = id
    end
  end
end

local prefixes = {}
for k = 1, #digits do prefixes[k] = string.sub(digits, 1, k) end

local function enforced(rec)
  local s = string.sub(rec, 1, 1)
  if s == 'P' then return true end
  if s ~= 'a' then return false end
  local x = string.match(rec, '^a;%d+;(%d+)')
  return x == nil or tonumber(x) > now
end

local batches = {}
local function batch_of(rec)
  local b = tonumber(string.match(rec, '^.;(%d+)'))
  if b == nil then return false end
  if batches[b] == nil then
    batches[b] = redis.call('HGET', base .. K_BATCH .. string.format('%.0f', math.floor(b / BATCH_BUCKET)),
      string.format('%.0f', b % BATCH_BUCKET)) or false
  end
  return batches[b]
end

local out = {}
local function push(meta, key, is_prefix, rec)
  if all or enforced(rec) then
    out[#out + 1] = meta[1]
    out[#out + 1] = meta[2]
    out[#out + 1] = key
    out[#out + 1] = is_prefix
    out[#out + 1] = rec
    out[#out + 1] = batch_of(rec)
  end
end

local nanp = #digits == 11 and string.sub(digits, 1, 1) == '1'
for _, id in ipairs(ids) do
  local meta = redis.call('HMGET', base .. K_LIST .. id, 'name', 'action', 'direction',
    'registry', 'rbatch')
  if meta[4] then
    if nanp and meta[4] == 'us' and (meta[3] == 'both' or meta[3] == dir) then
      local bit = redis.call('GETBIT', base .. K_REG .. id .. ':' .. string.sub(digits, 2, 7),
        tonumber(string.sub(digits, 8, 11)))
      if bit == 1 then push(meta, digits, 'r', 'a;' .. (meta[5] or '')) end
    end
  elseif meta[1] and (meta[3] == 'both' or meta[3] == dir) then
    local rec = redis.call('HGET', base .. K_EXACT .. id .. ':' .. bucket, field)
    if rec then push(meta, digits, '0', rec) end
    local recs = redis.call('HMGET', base .. K_PREFIXES .. id, unpack(prefixes))
    for k = 1, #prefixes do
      if recs[k] then push(meta, prefixes[k], '1', recs[k]) end
    end
  end
end
return out
