-- callscreen reports, step 2 of 2: the entries that last blocked or labeled a chunk of
-- numbers, read in their lists (point reads only).
--
-- KEYS[1]  the meta hash (declared so the script's slot is known; every key read
--          shares its hash tag)
-- ARGV[1]  base ("{cs}")
-- ARGV[2..] four items a number: the list's name, then "e", EB, EF for the number
--          itself (the bucket and field of its exact entry: number % and // the table's
--          bucket count) or "p", the prefix digits, "" for a prefix entry
--
-- Returns one item a number: the entry's record ({cs}:e:ID:EB EF, {cs}:p:ID digits), nil
-- when the list or the entry is gone. Key names as in keys.py.

local base = ARGV[1]
local lists = base .. ':lists'
local ids = {}
local out = {}
local n = 0
for i = 2, #ARGV, 4 do
  local name = ARGV[i]
  local id = ids[name]
  if id == nil then
    id = redis.call('HGET', lists, name)
    ids[name] = id
  end
  local record = false
  if id then
    if ARGV[i + 1] == 'e' then
      record = redis.call('HGET', base .. ':e:' .. id .. ':' .. ARGV[i + 2], ARGV[i + 3])
    else
      record = redis.call('HGET', base .. ':p:' .. id, ARGV[i + 2])
    end
  end
  n = n + 1
  out[n] = record
end
return out
