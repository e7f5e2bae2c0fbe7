-- callscreen log writer: apply one batch of the attempt log exactly once.
--
-- KEYS[1]  the writer's progress key ({LT}:log:w:WRITER): the last batch it applied
-- KEYS[2]  the shard's stream of allowed and unscreened calls ({LT}:log)
-- KEYS[3]  the shard's stream of blocked and labeled calls ({LT}:log:k): evidence
-- ARGV[1]  the batch's sequence number (increasing per writer)
-- ARGV[2]  how long the progress key lives, in seconds
-- ARGV[3]  n, the number of records to append
-- ARGV[4]  KEYS[2]'s length bound (0: none), trimmed with MAXLEN ~ after appending
-- ARGV[5]  KEYS[2]'s age bound as a minimal id ("": none), trimmed with MINID ~
-- ARGV[6]  KEYS[3]'s age bound as a minimal id ("": none): never trimmed by count
-- ARGV[7 .. 6+2n]  the records, each as two arguments: "k" (kept: KEYS[3]) or "" (KEYS[2]),
--                  then the value of the stream field "v1"
-- ARGV[7+2n ..]    further commands, each as its argument count then its arguments:
--                  "4", "HINCRBY", key, field, n ... (HINCRBY, ZINCRBY, HSETNX, EXPIRE, ...)
--
-- Returns {applied, refused}: applied is 1, or 0 when the batch had been applied
-- already (a writer that lost its connection before reading the reply sends the
-- batch again; this check keeps the day counters exact); refused counts commands
-- Redis refused (a key of the wrong type: someone else's data). The batch is
-- marked applied first and each command runs with pcall, so a refused command
-- neither stops the others nor gets the batch applied twice. Scripts run whole, so
-- no client ever sees the stream past its bound. Every key shares the hash tag of
-- KEYS[1] (Redis Cluster).

local seq = tonumber(ARGV[1])
local done = tonumber(redis.call('GET', KEYS[1]) or '0')
if seq <= done then
  return {0, 0}
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])

local refused = 0
local function run(...)
  local reply = redis.pcall(...)
  if type(reply) == 'table' and reply.err then
    refused = refused + 1
    return nil
  end
  return reply
end

local stream, kept = KEYS[2], KEYS[3]
local n = tonumber(ARGV[3])
local added = 0
local first = 7
local after = first + 2 * n
for k = first, after - 1, 2 do
  if ARGV[k] == 'k' then
    run('XADD', kept, '*', 'v1', ARGV[k + 1])
  else
    run('XADD', stream, '*', 'v1', ARGV[k + 1])
    added = added + 1
  end
end
if added > 0 and ARGV[4] ~= '0' then
  run('XTRIM', stream, 'MAXLEN', '~', ARGV[4])
end
if ARGV[5] ~= '' then
  run('XTRIM', stream, 'MINID', '~', ARGV[5])
end
if ARGV[6] ~= '' then
  run('XTRIM', kept, 'MINID', '~', ARGV[6])
end

local i = after
local last = #ARGV
while i <= last do
  local count = tonumber(ARGV[i])
  run(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
return {1, refused}
