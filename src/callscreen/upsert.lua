-- callscreen upsert: write entries of one list, keeping its per-status counts exact.
--
-- KEYS[1]  the list's counts hash
-- ARGV[1]  mode: "add" (an admin adds entries; they become active)
-- ARGV[2..] triples: hash key, field, new record ("s;batch;expires;removal;extid")
--
-- Returns one outcome a triple: "added", "updated" or "restored".
-- A permanently approved entry stays permanent: only its details change.

local counts = KEYS[1]
local out = {}
for i = 2, #ARGV, 3 do
  local key, field, rec = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local old = redis.call('HGET', key, field)
  local outcome = 'added'
  if old then
    local was = string.sub(old, 1, 1)
    if was == 'P' then
      rec = 'P' .. string.sub(rec, 2)
    end
    outcome = (was == 'd') and 'restored' or 'updated'
    redis.call('HINCRBY', counts, was, -1)
  end
  redis.call('HSET', key, field, rec)
  redis.call('HINCRBY', counts, string.sub(rec, 1, 1), 1)
  out[#out + 1] = outcome
end
return out
