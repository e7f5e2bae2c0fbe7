#!lua flags=no-writes
-- callscreen lookup: every entry that matches one number, in every list that
-- applies to one call, in one round trip.
--
-- KEYS[1]  the lookup index ({cs}:lk, lookuplib.lua: which lists apply to a call in
--          each direction and campaign, and the prefix lengths); every other key
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
-- Redis work per call: one HMGET of the lookup index, then per number one HGET of the
-- holders index (which lists hold the number) and one HMGET of the prefix index over the
-- candidate prefixes of the lengths some prefix has (lookuplib.lua), then one HGET per
-- entry found in a list that applies, one GETBIT per registry list, one HGET per
-- distinct batch among the matches returned. A number on no list costs two reads
-- (one if no list has prefixes), however many lists apply.

local base, dir, camp = ARGV[1], ARGV[2], ARGV[3]
local now, all = tonumber(ARGV[4]), ARGV[5] == '1'

local index = redis.call('HMGET', KEYS[1], 'v', 'buckets', 'pl', 'g:' .. dir,
  camp ~= '' and ('c:' .. dir .. ':' .. camp) or 'v')
if index[1] ~= '2' then
  -- not built: an empty table (no list applies to anything yet), or data of an older
  -- layout, which must not be read as "no lists"
  if index[1] or redis.call('EXISTS', base .. K_GLOBAL) == 1
      or redis.call('EXISTS', base .. K_CAMPS) == 1 then
    return redis.error_reply('ERR callscreen lookup index missing: run callscreen migrate')
  end
  local none = {}
  for i = 6, #ARGV do none[#none + 1] = {} end
  return none
end
local applied = index[4] or ''
if camp ~= '' and index[5] then applied = applied .. index[5] end
-- with a newline in front, "\nID\t" finds list ID's line; its place orders the matches
-- as the lists' ids do (the order of the lines)
applied = '\n' .. applied
-- "\tus\t" can only be a registry column (an action is a word, a name has no tabs)
local registries = string.find(applied, '\tus\t', 1, true) ~= nil

local lengths = {}  -- the prefix lengths, ascending
for n in string.gmatch(index[3] or '', '%d+') do lengths[#lengths + 1] = tonumber(n) end

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

-- the matches of one number, by the place of their list's line (then in the order found:
-- the exact entry, then prefixes from the shortest)
local found, places
local function push(at, name, action, key, is_prefix, rec)
  if all or enforced(rec) then
    local items = found[at]
    if items == nil then
      items = {}
      found[at] = items
      places[#places + 1] = at
    end
    items[#items + 1] = name
    items[#items + 1] = action
    items[#items + 1] = key
    items[#items + 1] = is_prefix
    items[#items + 1] = rec
    items[#items + 1] = batch_of(rec)
  end
end

-- list `id`'s line among the lists that apply: its place, action and name; nil if the
-- list does not apply to this call (or is gone: the holders index may name it still)
local function line_of(id)
  local at = string.find(applied, '\n' .. id .. '\t', 1, true)
  if not at then return nil end
  local action, name = string.match(applied, '^\n%d+\t(%a+)\t%a*\t%d*\t([^\n]*)', at)
  return at, action, name
end

local LINE = '(%d+)\t(%a+)\t(%a*)\t(%d*)\t([^\n]*)\n'

local function lookup(digits)
  found, places = {}, {}
  -- buckets is a power of two, so these divisions are exact on Lua's doubles
  local n = tonumber(digits)
  local bucket = string.format('%.0f', n % buckets)
  local field = string.format('%.0f', math.floor(n / buckets))
  local ids = redis.call('HGET', base .. K_NUMBERS .. bucket, field)
  if ids then
    for id in string.gmatch(ids, '%d+') do
      local at, action, name = line_of(id)
      if at then
        local rec = redis.call('HGET', base .. K_EXACT .. id .. ':' .. bucket, field)
        if rec then push(at, name, action, digits, '0', rec) end
      end
    end
  end
  local prefixes = {}
  for k = 1, #lengths do
    if lengths[k] > #digits then break end
    prefixes[k] = string.sub(digits, 1, lengths[k])
  end
  if #prefixes > 0 then
    local holders = redis.call('HMGET', base .. K_NUMBERS .. 'p', unpack(prefixes))
    for k = 1, #prefixes do
      if holders[k] then
        for id in string.gmatch(holders[k], '%d+') do
          local at, action, name = line_of(id)
          if at then
            local rec = redis.call('HGET', base .. K_PREFIXES .. id, prefixes[k])
            if rec then push(at, name, action, prefixes[k], '1', rec) end
          end
        end
      end
    end
  end
  if registries and #digits == 11 and string.sub(digits, 1, 1) == '1' then
    local at = 0
    for id, action, registry, rbatch, name in string.gmatch(applied, LINE) do
      at = string.find(applied, '\n' .. id .. '\t', at + 1, true)
      if registry == 'us' then
        local bit = redis.call('GETBIT', base .. K_REG .. id .. ':' .. string.sub(digits, 2, 7),
          tonumber(string.sub(digits, 8, 11)))
        if bit == 1 then push(at, name, action, digits, 'r', 'a;' .. rbatch) end
      end
    end
  end
  if #places > 1 then table.sort(places) end
  local out = {}
  for _, at in ipairs(places) do
    for _, item in ipairs(found[at]) do out[#out + 1] = item end
  end
  return out
end

-- the numbers, each its own array of matches
local replies = {}
for i = 6, #ARGV do replies[#replies + 1] = lookup(ARGV[i]) end
return replies
