-- callscreen reports: what the lost/never-contacted split needs of each number, for a
-- chunk of numbers in one call (point reads only; never a scan of the table).
--
-- KEYS[1]  the meta hash (declared for the slot; every key shares its hash tag)
-- ARGV[1]  base ("{cs}")
-- ARGV[2..] four items a number: B and F, its first-contact bucket and field (number
--          % and // FIRST_CONTACT_BUCKETS), then EB and EF, the bucket and field of an
--          exact entry for it (number % and // the table's bucket count)
--
-- Returns three items a number: its first-contact mark ({cs}:fc:B F, epoch ms), the
-- entry that last blocked or labeled it ({cs}:log:d:B F, "list TAB entry"), and that
-- entry's record in its list ({cs}:e:ID:EB EF for the number itself, {cs}:p:ID for a
-- prefix), each nil when there is none (no contact, a deleted list or entry).
-- Key names as in keys.py.

local base = ARGV[1]
local marks, deciders = base .. K_FIRST_CONTACT, base .. K_DECIDER
local lists = base .. K_LISTS
local ids = {}
local out = {}
local n = 0
for i = 2, #ARGV, 4 do
  local bucket, field = ARGV[i], ARGV[i + 1]
  out[n + 1] = redis.call('HGET', marks .. bucket, field)
  local decider = redis.call('HGET', deciders .. bucket, field)
  out[n + 2] = decider
  local record = false
  if decider then
    local tab = string.find(decider, '\t', 1, true)
    if tab then
      local name = string.sub(decider, 1, tab - 1)
      local id = ids[name]
      if id == nil then
        id = redis.call('HGET', lists, name)
        ids[name] = id
      end
      if id then
        if tab == #decider then
          record = redis.call('HGET', base .. K_EXACT .. id .. ':' .. ARGV[i + 2], ARGV[i + 3])
        else
          local digits = string.gsub(string.sub(decider, tab + 1), '[^0-9]', '')
          record = redis.call('HGET', base .. K_PREFIXES .. id, digits)
        end
      end
    end
  end
  out[n + 3] = record
  n = n + 3
end
return out
