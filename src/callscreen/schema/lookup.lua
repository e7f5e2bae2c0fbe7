#!lua flags=no-writes
-- callscreen lookup: every entry that matches one number, in every list that
-- applies to one call, in one round trip.
--
-- KEYS[1]  the lookup index ({cs}:lk, lookuplib.lua: which lists apply to a call in
--          each direction and campaign, and which have prefixes); every other key
--          shares its hash tag
-- ARGV     base ("{cs}"), direction, campaign ("" for none), now (epoch seconds),
--          all ("1": also entries that are not enforced), then the numbers: E.164
--          digits without '+' (one for a call; a check sends many in one call)
--
-- Returns one array per number, in order: a flat array of six items a match:
--   list name, action, entry digits, "1" if a prefix, "r" if a registry listing, else
--   "0", entry record, batch JSON
-- A registry list (field "registry" of its hash: "us") holds no entries: one bit per
-- possible number of each exchange, {cs}:reg:ID:NPANXX, bit = the last four digits;
-- a listed number is reported as an active exact entry of the list's last load batch
-- (field "rbatch").
-- Which match decides is not chosen here: the precedence rules live in Python.
--
-- Redis work per call: one HMGET of the index, one HGET per applicable list (GETBIT for
-- a registry list), one HMGET of the candidate prefixes per list that has prefixes, one
-- HGET per distinct batch among the matches returned.

local base, dir, camp = ARGV[1], ARGV[2], ARGV[3]
local now, all = tonumber(ARGV[4]), ARGV[5] == '1'

local index = redis.call('HMGET', KEYS[1], 'v', 'buckets', 'px', 'g:' .. dir,
  camp ~= '' and ('c:' .. dir .. ':' .. camp) or 'v')
if not index[1] then
  -- not built: an empty table (no list applies to anything yet), or data of an older
  -- layout, which must not be read as "no lists"
  if redis.call('EXISTS', base .. K_GLOBAL) == 1 or redis.call('EXISTS', base .. K_CAMPS) == 1 then
    return redis.error_reply('ERR callscreen lookup index missing: run callscreen migrate')
  end
  local none = {}
  for i = 6, #ARGV do none[#none + 1] = {} end
  return none
end
local flagged = {}  -- the lists with prefixes
for id in string.gmatch(index[3] or '', '%d+') do flagged[id] = true end
local applied = index[4] or ''
if camp ~= '' and index[5] then applied = applied .. index[5] end

local buckets = tonumber(index[2])

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

local out
local function push(name, action, key, is_prefix, rec)
  if all or enforced(rec) then
    out[#out + 1] = name
    out[#out + 1] = action
    out[#out + 1] = key
    out[#out + 1] = is_prefix
    out[#out + 1] = rec
    out[#out + 1] = batch_of(rec)
  end
end

local LINE = '(%d+)\t(%a+)\t(%a*)\t(%d*)\t([^\n]*)\n'

local function lookup(digits)
  out = {}  -- push() appends here
  local n = tonumber(digits)
  -- buckets is a power of two, so these divisions are exact on Lua's doubles
  local bucket = string.format('%.0f', n % buckets)
  local field = string.format('%.0f', math.floor(n / buckets))
  local prefixes = nil
  local nanp = #digits == 11 and string.sub(digits, 1, 1) == '1'
  -- the index's lines parsed again for each number: cheaper for the one number of a
  -- call than tables of them (measured: bench/bench_gateway.py --redis-only)
  for id, action, registry, rbatch, name in string.gmatch(applied, LINE) do
    if registry ~= '' then
      if nanp and registry == 'us' then
        local bit = redis.call('GETBIT', base .. K_REG .. id .. ':' .. string.sub(digits, 2, 7),
          tonumber(string.sub(digits, 8, 11)))
        if bit == 1 then push(name, action, digits, 'r', 'a;' .. rbatch) end
      end
    else
      local rec = redis.call('HGET', base .. K_EXACT .. id .. ':' .. bucket, field)
      if rec then push(name, action, digits, '0', rec) end
      if flagged[id] then
        if prefixes == nil then
          prefixes = {}
          for k = 1, #digits do prefixes[k] = string.sub(digits, 1, k) end
        end
        local recs = redis.call('HMGET', base .. K_PREFIXES .. id, unpack(prefixes))
        for k = 1, #prefixes do
          if recs[k] then push(name, action, prefixes[k], '1', recs[k]) end
        end
      end
    end
  end
  return out
end

-- the numbers, each its own array of matches
local replies = {}
for i = 6, #ARGV do replies[#replies + 1] = lookup(ARGV[i]) end
return replies
