-- callscreen reports: what the lost/never-contacted split needs of each number, in
-- one pass over a chunk of numbers (point reads only; never a scan of the table).
--
-- KEYS[1]  the meta hash (the entry tables' bucket count; its hash tag is every key's)
-- ARGV[1]  base ("{cs}"), ARGV[2] the first-contact bucket count (FIRST_CONTACT_BUCKETS)
-- ARGV[3..] numbers, as E.164 digits
--
-- Returns three items a number: its first-contact mark ({cs}:fc:B, epoch ms), the entry
-- that last blocked or labeled it ({cs}:log:d:B, "list TAB entry"), and that entry's
-- record in its list ("status;batch;..."), each nil when there is none (a deleted list,
-- a deleted entry). Key names as in keys.py; the bucket arithmetic is exact on Lua's
-- doubles because numbers have at most 15 digits and bucket counts are powers of two.

local base = ARGV[1]
local fcb = tonumber(ARGV[2])
local buckets = tonumber(redis.call('HGET', KEYS[1], 'buckets') or '32768')
local ids = {}
local out = {}
local function int(x)
  return string.format('%.0f', x)
end

for i = 3, #ARGV do
  local n = tonumber(ARGV[i])
  local bucket, field = int(n % fcb), int(math.floor(n / fcb))
  out[#out + 1] = redis.call('HGET', base .. ':fc:' .. bucket, field)
  local decider = redis.call('HGET', base .. ':log:d:' .. bucket, field)
  out[#out + 1] = decider
  local record = false
  if decider then
    local tab = string.find(decider, '\t', 1, true)
    if tab then
      local name, entry = string.sub(decider, 1, tab - 1), string.sub(decider, tab + 1)
      local id = ids[name]
      if id == nil then
        id = redis.call('HGET', base .. ':lists', name)
        ids[name] = id
      end
      if id then
        if entry == '' then
          record = redis.call('HGET', base .. ':e:' .. id .. ':' .. int(n % buckets),
            int(math.floor(n / buckets)))
        else
          record = redis.call('HGET', base .. ':p:' .. id, (string.gsub(entry, '[^0-9]', '')))
        end
      end
    end
  end
  out[#out + 1] = record
end
return out
