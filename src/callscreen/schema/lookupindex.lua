-- callscreen lookup index: rebuild {cs}:lk from the lists and campaigns (lookuplib.lua,
-- before this body). Run in the same MULTI as every change of a list or a campaign,
-- and by `callscreen migrate`.
--
-- KEYS[1]  the lookup index hash (declared for the slot; every other key shares its tag)
-- ARGV[1]  base ("{cs}")

lookup_rebuild(ARGV[1])
return 1
