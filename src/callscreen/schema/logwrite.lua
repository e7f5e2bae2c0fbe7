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
-- ARGV[7]  the shard's key base ({LT}): a number's attempt indexes are
--          {LT} .. K_ATTEMPTS .. DIGITS (records of KEYS[2]) and
--          {LT} .. K_KEPT_ATTEMPTS .. DIGITS (records of KEYS[3]), lists of
--          "CODE" .. stream id, newest first
-- ARGV[8]  how long KEYS[3]'s records live, in seconds (0: for ever)
-- ARGV[9]  how long KEYS[2]'s records live at most, in seconds (0: no age bound)
-- ARGV[10 .. 9+3n]  the records, each as three arguments: the outcome code (A allowed,
--                  U unscreened: KEYS[2]; B blocked, L labeled, F fail-closed: KEYS[3]),
--                  the number's E.164 digits ("" for none: not indexed), the value of
--                  the stream field "v1"
-- ARGV[10+3n ..]   further commands, each as its argument count then its arguments:
--                  "4", "HINCRBY", key, field, n ... (HINCRBY, ZINCRBY, HSETNX, EXPIRE, ...)
--
-- A number's indexes are trimmed with the records: after the streams are trimmed, the
-- oldest entries of each index the batch touched are dropped while their record is
-- gone (older than its stream's first id: one index a stream, so its oldest entry is
-- its stream's), and an index written to expires when its newest record is expected
-- to go: after the kept stream's age bound; for the other stream, its age bound or,
-- when it is bounded by count and full, twice the time it now spans (plus a day); for
-- ever when its records are (PERSIST). Readers skip entries whose record is gone
-- (numberlog.lua).
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

local KEPT = {B = true, L = true, F = true}
local stream, kept = KEYS[2], KEYS[3]
local n = tonumber(ARGV[3])
local base = ARGV[7]
local kept_ttl = tonumber(ARGV[8])
local age_ttl = tonumber(ARGV[9])
local added = 0
local first = 10
local after = first + 3 * n
local touched = {}  -- index -> {kept = its stream, pushed = bool}
local order = {}
local now_ms = 0
for k = first, after - 1, 3 do
  local code, digits = ARGV[k], ARGV[k + 1]
  local is_kept = KEPT[code] == true
  local id
  if is_kept then
    id = run('XADD', kept, '*', 'v1', ARGV[k + 2])
  else
    id = run('XADD', stream, '*', 'v1', ARGV[k + 2])
    added = added + 1
  end
  if id then
    now_ms = tonumber(string.match(id, '^(%d+)'))
    if digits ~= '' then
      local index = base .. (is_kept and K_KEPT_ATTEMPTS or K_ATTEMPTS) .. digits
      local t = touched[index]
      if not t then
        t = {kept = is_kept}
        touched[index] = t
        order[#order + 1] = index
      end
      if run('LPUSH', index, code .. id) then
        t.pushed = true
      end
    end
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

if #order > 0 then
  -- the first id left in each stream: an index entry older than it has lost its record
  local function oldest(key)
    local head = redis.call('XRANGE', key, '-', '+', 'COUNT', 1)
    if #head == 0 then return nil end
    local ms, sq = string.match(head[1][1], '^(%d+)-(%d+)$')
    return {tonumber(ms), tonumber(sq)}
  end
  local first_of = {[stream] = oldest(stream), [kept] = oldest(kept)}
  local function gone(entry, key)
    local low = first_of[key]
    if not low then return true end
    local ms, sq = string.match(entry, '^.(%d+)-(%d+)$')
    ms, sq = tonumber(ms), tonumber(sq)
    return ms < low[1] or (ms == low[1] and sq < low[2])
  end
  -- how long the other stream's records are expected to live, in seconds (0: for ever)
  local other_ttl = age_ttl
  local bound = tonumber(ARGV[4])
  local low = first_of[stream]
  if bound > 0 and low and redis.call('XLEN', stream) >= bound then
    local span = 2 * math.floor((now_ms - low[1]) / 1000) + 86400
    if other_ttl == 0 or span < other_ttl then other_ttl = span end
  elseif other_ttl == 0 and bound > 0 then
    other_ttl = kept_ttl  -- not full yet: its span says nothing; a long expiry
  end
  for _, index in ipairs(order) do
    local t = touched[index]
    local key = t.kept and kept or stream
    for _ = 1, 1000 do
      local tail = redis.call('LINDEX', index, -1)
      if not tail or not gone(tail, key) then break end
      redis.call('RPOP', index)
    end
    -- the index lives as long as its newest record, just pushed, is expected to
    if t.pushed then
      local need = t.kept and kept_ttl or other_ttl
      if need == 0 then
        redis.call('PERSIST', index)
      else
        redis.call('EXPIRE', index, need)
      end
    end
  end
end

local i = after
local last = #ARGV
while i <= last do
  local count = tonumber(ARGV[i])
  run(unpack(ARGV, i + 1, i + count))
  i = i + count + 1
end
return {1, refused}
