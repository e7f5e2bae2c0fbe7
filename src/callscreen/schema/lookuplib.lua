-- callscreen lookup index: the functions that keep {cs}:lk, the one hash the lookup
-- reads to know which lists apply to a call (keys.Keys.lookup), and the holders index
-- ({cs}:n:B, {cs}:n:p), which says which lists hold a number or a prefix. Not a script
-- by itself: scripts.py puts it before the body of the scripts that change what they
-- summarize.
--
-- {cs}:lk fields:
--   v              the index's format ("2": the holders index is there too); missing: not
--                  built (see lookup.lua)
--   buckets        the exact-entry bucket count ({cs}:meta's, copied)
--   pl             ",N,N,...,": the lengths of the prefixes in the holders index. May
--                  name a length no prefix has any more (the lookup then asks for a field
--                  that is not there: slower, never wrong); never misses one: every writer
--                  of a new prefix adds its length in the same script (lookup_listed).
--   g:DIR          the global lists that screen DIR (inbound|outbound) calls
--   c:DIR:NAME     the lists campaign NAME adds for DIR calls (not already global)
-- A list is one line "id TAB action TAB registry TAB rbatch TAB name LF" (registry and
-- rbatch empty but for a national registry's list), lines in list id order.
-- lookup_rebuild writes it from the sources ({cs}:global, {cs}:camps, {cs}:camp:NAME,
-- {cs}:list:ID; "pl" is kept, or computed from {cs}:n:p when missing); every change of
-- a list or a campaign runs it in the same transaction (services.table), so the index
-- never disagrees with them.
--
-- The holders index: {cs}:n:B field F (as in the lists' exact buckets {cs}:e:L:B: B =
-- number % buckets, F = number // buckets) and {cs}:n:p field DIGITS (a prefix) ->
-- "ID,ID,...": the lists that hold that entry, whatever its status. It may name a list
-- that no longer holds it (a list deleted since, until services.table's clean-up: list
-- ids are never handed out again) but never misses one: every writer of a new entry
-- (entries.lua, import.lua) calls lookup_listed in the same script, and a purge calls
-- lookup_unlisted. So the lookup reads one field per number and one per prefix length,
-- whatever the number of lists, and then only the entries that are there.

-- ",N,N,...,": the lengths of the prefixes in the holders index, ascending
local function lookup_lengths(base)
  local seen, lengths = {}, {}
  for _, digits in ipairs(redis.call('HKEYS', base .. K_NUMBERS .. 'p')) do
    if not seen[#digits] then
      seen[#digits] = true
      lengths[#lengths + 1] = #digits
    end
  end
  table.sort(lengths)
  return ',' .. table.concat(lengths, ',') .. (#lengths > 0 and ',' or '')
end

local function lookup_rebuild(base)
  local lk = base .. K_LOOKUP
  local buckets = redis.call('HGET', base .. K_META, 'buckets') or tostring(DEFAULT_BUCKETS)
  local lines, dirs = {}, {}
  local function known(id)
    if lines[id] == nil then
      local m = redis.call('HMGET', base .. K_LIST .. id, 'name', 'action', 'direction',
        'registry', 'rbatch')
      if m[2] and (m[1] or m[4]) then
        local name = string.gsub(m[1] or '', '[\t\n]', ' ')
        lines[id] = id .. '\t' .. m[2] .. '\t' .. (m[4] or '') .. '\t' .. (m[5] or '') .. '\t'
          .. name .. '\n'
        dirs[id] = m[3] or 'both'
      else
        lines[id] = false
      end
    end
    return lines[id]
  end
  local function sorted(ids)
    table.sort(ids, function(a, b) return tonumber(a) < tonumber(b) end)
    return ids
  end
  local function joined(ids, dir)
    local out = {}
    for _, id in ipairs(ids) do
      if known(id) and (dirs[id] == 'both' or dirs[id] == dir) then out[#out + 1] = lines[id] end
    end
    return table.concat(out)
  end
  local fields = { 'v', '2', 'buckets', buckets }
  local global = sorted(redis.call('SMEMBERS', base .. K_GLOBAL))
  local is_global = {}
  for _, id in ipairs(global) do is_global[id] = true end
  for _, dir in ipairs({ 'inbound', 'outbound' }) do
    fields[#fields + 1] = 'g:' .. dir
    fields[#fields + 1] = joined(global, dir)
  end
  local camps = redis.call('SMEMBERS', base .. K_CAMPS)
  table.sort(camps)
  for _, camp in ipairs(camps) do
    local own = {}
    for _, id in ipairs(redis.call('SMEMBERS', base .. K_CAMP .. camp)) do
      if not is_global[id] then own[#own + 1] = id end
    end
    sorted(own)
    for _, dir in ipairs({ 'inbound', 'outbound' }) do
      local text = joined(own, dir)
      if text ~= '' then
        fields[#fields + 1] = 'c:' .. dir .. ':' .. camp
        fields[#fields + 1] = text
      end
    end
  end
  local pl = redis.call('HGET', lk, 'pl')
  if not pl then pl = lookup_lengths(base) end
  fields[#fields + 1] = 'pl'
  fields[#fields + 1] = pl
  redis.call('DEL', lk)
  -- in slices: unpack has a limit on how many values it returns
  for i = 1, #fields, 400 do
    redis.call('HSET', lk, unpack(fields, i, math.min(i + 399, #fields)))
  end
end

-- List `list_id` has just got a new entry at (loc, field): loc a bucket number (field
-- as in its exact bucket) or 'p' (field the prefix's digits). Adds the list to the number
-- index's field, and a new prefix length to the lookup index (nothing when the lookup
-- index is not built: `callscreen migrate` builds both).
local function lookup_listed(base, list_id, loc, field)
  local key = base .. K_NUMBERS .. loc
  local ids = redis.call('HGET', key, field)
  if not ids then
    redis.call('HSET', key, field, list_id)
  elseif not string.find(',' .. ids .. ',', ',' .. list_id .. ',', 1, true) then
    redis.call('HSET', key, field, ids .. ',' .. list_id)
  end
  if loc == 'p' then
    local lk = base .. K_LOOKUP
    local pl = redis.call('HGET', lk, 'pl')
    if pl and not string.find(pl, ',' .. #field .. ',', 1, true) then
      local lengths = {}
      for n in string.gmatch(pl, '%d+') do lengths[#lengths + 1] = tonumber(n) end
      lengths[#lengths + 1] = #field
      table.sort(lengths)
      redis.call('HSET', lk, 'pl', ',' .. table.concat(lengths, ',') .. ',')
    end
  end
end

-- List `list_id` no longer has the entry at (loc, field) (purged): the holders index
-- forgets it there.
local function lookup_unlisted(base, list_id, loc, field)
  local key = base .. K_NUMBERS .. loc
  local ids = redis.call('HGET', key, field)
  if not ids then return end
  local left, found = {}, false
  for id in string.gmatch(ids, '%d+') do
    if id == list_id then found = true else left[#left + 1] = id end
  end
  if not found then return end
  if #left == 0 then
    redis.call('HDEL', key, field)
  else
    redis.call('HSET', key, field, table.concat(left, ','))
  end
end
