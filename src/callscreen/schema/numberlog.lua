-- callscreen: one number's attempts, from its attempt indexes (written by logwrite.lua).
--
-- KEYS[1]  the number's index of allowed/unscreened calls ({LT}:log:n:DIGITS)
-- KEYS[2]  the number's index of blocked/labeled calls ({LT}:log:nk:DIGITS)
-- KEYS[3]  the shard's stream of allowed and unscreened calls ({LT}:log)
-- KEYS[4]  the shard's stream of blocked and labeled calls ({LT}:log:k)
--          (each index: "CODE" .. stream id, newest first)
-- ARGV[1]  the position to start at in KEYS[1] (0: the newest)
-- ARGV[2]  the position to start at in KEYS[2]
-- ARGV[3]  how many entries to take, the newest of both from there (0: none)
-- ARGV[4]  "1": also count every entry whose record is still kept, by code
-- ARGV[5]  the codes of the entries to take ("": all), e.g. "B": blocked calls only
--
-- Returns {next1, next2, more, totals, records}: the positions after the entries taken;
-- more is 1 when either index goes on; totals a flat list code, count, ... (empty
-- unless asked); records a flat list stream id, value of "v1", ... of the entries
-- taken whose record is still kept, newest first. An entry older than its stream's
-- first record has lost its record to the trim (the writer drops such entries at the
-- index's tail when it next writes to it). Reads only; every key shares the shard's
-- hash tag.

local stream_of = {[KEYS[1]] = KEYS[3], [KEYS[2]] = KEYS[4]}

local function oldest(key)
  local head = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
  if #head == 0 then return nil end
  local ms, sq = string.match(head[1][1], '^(%d+)-(%d+)$')
  return {tonumber(ms), tonumber(sq)}
end
local first_of = {[KEYS[3]] = oldest(KEYS[3]), [KEYS[4]] = oldest(KEYS[4])}

local function id_of(entry)
  local ms, sq = string.match(entry, '^.(%d+)-(%d+)$')
  return {tonumber(ms) or 0, tonumber(sq) or 0}
end

local function newer(a, b)
  return a[1] > b[1] or (a[1] == b[1] and a[2] > b[2])
end

local function kept(entry, stream)
  local low = first_of[stream]
  if not low then return false end
  return not newer(low, id_of(entry))
end

local totals = {}
if ARGV[4] == '1' then
  local counts, codes = {}, {}
  for k = 1, 2 do
    local stream = KEYS[k + 2]
    local all = redis.call('LRANGE', KEYS[k], 0, -1)
    -- an index is in its stream's id order and the streams are trimmed from their
    -- oldest end: the entries whose record is gone are the index's last ones
    local n = #all
    while n > 0 and not kept(all[n], stream) do n = n - 1 end
    for i = 1, n do
      local code = string.sub(all[i], 1, 1)
      local c = counts[code]
      if not c then
        codes[#codes + 1] = code
        c = 0
      end
      counts[code] = c + 1
    end
  end
  for _, code in ipairs(codes) do
    totals[#totals + 1] = code
    totals[#totals + 1] = counts[code]
  end
end

local pos = {tonumber(ARGV[1]), tonumber(ARGV[2])}
local count = tonumber(ARGV[3])
local records = {}
local more = 0
if count > 0 then
  local got = {
    redis.call('LRANGE', KEYS[1], pos[1], pos[1] + count - 1),
    redis.call('LRANGE', KEYS[2], pos[2], pos[2] + count - 1),
  }
  local at = {1, 1}
  for _ = 1, count do
    local a, b = got[1][at[1]], got[2][at[2]]
    local k
    if a and b then
      k = newer(id_of(b), id_of(a)) and 2 or 1
    elseif a then
      k = 1
    elseif b then
      k = 2
    else
      break
    end
    local entry = got[k][at[k]]
    at[k] = at[k] + 1
    local stream = KEYS[k + 2]
    local wanted = ARGV[5] == '' or string.find(ARGV[5], string.sub(entry, 1, 1), 1, true)
    if wanted and kept(entry, stream) then
      local id = string.sub(entry, 2)
      local found = redis.call('XRANGE', stream, id, id)
      if #found == 1 then
        local fields = found[1][2]
        for f = 1, #fields, 2 do
          if fields[f] == 'v1' then
            records[#records + 1] = id
            records[#records + 1] = fields[f + 1]
          end
        end
      end
    end
  end
  pos[1] = pos[1] + at[1] - 1
  pos[2] = pos[2] + at[2] - 1
  for k = 1, 2 do
    if at[k] <= #got[k] or #got[k] == count then more = 1 end
  end
end
return {pos[1], pos[2], more, totals, records}
