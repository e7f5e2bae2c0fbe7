-- callscreen reports, step 1 of 2: what one attempt-log shard keeps about a chunk of
-- numbers for the lost/never-contacted split (point reads only; never a scan).
--
-- KEYS[1]  the shard's stream (declared so the script's slot is known: every key read
--          shares the shard's hash tag)
-- ARGV[1]  the shard's base ("{cs.log.3}")
-- ARGV[2..] two items a number of the shard: B and F, its first-contact bucket and
--          field (number % and // FIRST_CONTACT_BUCKETS)
--
-- Returns two items a number: its first-contact mark ({LT}:fc:B F, epoch ms) and the
-- entry that last blocked or labeled it ({LT}:log:d:B F, "list TAB entry"), each nil
-- when there is none. Step 2 (reportentries.lua) reads the entries under {cs}.
-- Key names as in keys.py.

local base = ARGV[1]
local marks, deciders = base .. ':fc:', base .. ':log:d:'
local out = {}
local n = 0
for i = 2, #ARGV, 2 do
  local bucket, field = ARGV[i], ARGV[i + 1]
  out[n + 1] = redis.call('HGET', marks .. bucket, field)
  out[n + 2] = redis.call('HGET', deciders .. bucket, field)
  n = n + 2
end
return out
