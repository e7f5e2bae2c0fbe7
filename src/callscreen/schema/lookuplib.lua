-- callscreen lookup index: the functions that keep {cs}:lk, the one hash the lookup
-- reads to know which lists apply to a call (keys.Keys.lookup). Not a script by itself:
-- scripts.py puts it before the body of the scripts that change what it summarizes.
--
-- {cs}:lk fields:
--   v              the index's format ("1"); missing: not built (see lookup.lua)
--   buckets        the exact-entry bucket count ({cs}:meta's, copied)
--   px             ",ID,ID,...,": the lists whose prefix hash has fields. May name a list
--                  whose prefixes were all purged since (the lookup then reads an empty
--                  hash: slower, never wrong); never misses one: every writer of a prefix
--                  hash flags its list in the same script (lookup_flag_prefixes).
--   g:DIR          the global lists that screen DIR (inbound|outbound) calls
--   c:DIR:NAME     the lists campaign NAME adds for DIR calls (not already global)
-- A list is one line "id TAB action TAB registry TAB rbatch TAB name LF" (registry and
-- rbatch empty but for a national registry's list), lines in list id order.
-- lookup_rebuild writes it from the sources ({cs}:global, {cs}:camps, {cs}:camp:NAME,
-- {cs}:list:ID, {cs}:p:ID); every change of a list or a campaign runs it in the same
-- transaction (services.table), so the index never disagrees with them.

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
  local fields = { 'v', '1', 'buckets', buckets }
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
  local px = {}
  for id, line in pairs(lines) do
    if line and redis.call('EXISTS', base .. K_PREFIXES .. id) == 1 then px[#px + 1] = id end
  end
  sorted(px)
  fields[#fields + 1] = 'px'
  fields[#fields + 1] = ',' .. table.concat(px, ',') .. (#px > 0 and ',' or '')
  redis.call('DEL', lk)
  -- in slices: unpack has a limit on how many values it returns
  for i = 1, #fields, 400 do
    redis.call('HSET', lk, unpack(fields, i, math.min(i + 399, #fields)))
  end
end

-- KEY (a list's prefix hash, base .. K_PREFIXES .. ID) has just got a field: flag the
-- list in the index, so that the lookup reads its prefixes. Nothing when the index is
-- not built (data of an older layout: `callscreen migrate` builds it).
local function lookup_flag_prefixes(base, key)
  local lk = base .. K_LOOKUP
  local px = redis.call('HGET', lk, 'px')
  if not px then return end
  local id = string.sub(key, #base + #K_PREFIXES + 1)
  if not string.find(px, ',' .. id .. ',', 1, true) then
    redis.call('HSET', lk, 'px', px .. id .. ',')
  end
end
