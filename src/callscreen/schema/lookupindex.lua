-- callscreen lookup index: rebuild {cs}:lk from the lists and campaigns (lookuplib.lua,
-- before this body). Run in the same MULTI as every change of a list or a campaign,
-- and by `callscreen migrate`.
--
-- KEYS[1]  the lookup index hash (declared for the slot; every other key shares its tag)
-- ARGV[1]  base ("{cs}")
-- ARGV[2]  "unlist" (else: the rebuild): strip deleted list ARGV[3] from the number
--          index's buckets ARGV[4..] (bucket numbers, or "p"), after the list's deletion
--          (services.table.Table.drop_list); returns how many fields named it.

local base = ARGV[1]
if ARGV[2] == 'unlist' then
  local id, stripped = ARGV[3], 0
  for i = 4, #ARGV do
    local key = base .. K_NUMBERS .. ARGV[i]
    local flat = redis.call('HGETALL', key)
    for k = 1, #flat, 2 do
      local ids = flat[k + 1]
      if string.find(',' .. ids .. ',', ',' .. id .. ',', 1, true) then
        lookup_unlisted(base, id, ARGV[i], flat[k])
        stripped = stripped + 1
      end
    end
  end
  return stripped
end
lookup_rebuild(base)
return 1
