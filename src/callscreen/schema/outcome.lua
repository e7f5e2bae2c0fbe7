-- callscreen outcome watcher: count one call's outcome, once, whatever the number of
-- gateways that saw it.
--
-- KEYS[1]  the call's "seen" key ({cs}:oc:u:UNIQUEID)
-- KEYS[2]  the number's failure zset ({cs}:oc:n:DIGITS)
-- ARGV     op ("fail" | "answer"), now (epoch ms), window (ms), threshold,
--          seen TTL (s), member (the call's uniqueid)
--
-- Returns {status, count}: status "dup" (another gateway, or an earlier event, already
-- counted this call), "reset" (answered: the number's failures are forgotten),
-- "counted" (a failure, count within the window), or "reached" (the count reached the
-- threshold: the failures are forgotten and the caller lists the number).

local seen, failures = KEYS[1], KEYS[2]
local op, now, window = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local threshold, ttl, member = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6]

if not redis.call('SET', seen, '1', 'NX', 'EX', ttl) then
  return { 'dup', 0 }
end
if op == 'answer' then
  redis.call('DEL', failures)
  return { 'reset', 0 }
end
redis.call('ZADD', failures, now, member)
redis.call('ZREMRANGEBYSCORE', failures, '-inf', now - window)
local count = redis.call('ZCARD', failures)
if count >= threshold then
  redis.call('DEL', failures)
  return { 'reached', count }
end
redis.call('PEXPIRE', failures, window)
return { 'counted', count }
