-- callscreen: a bounded chunk of a list's exact entries whose number starts with given
-- digits, read in storage order (bucket by bucket, by field within a bucket). Read only.
-- Run again from the position it returns until the page is full or the buckets end:
-- each call reads at most ARGV[6] buckets, so Redis is never held long (the call path
-- shares it).
--
-- KEYS[1]  the meta hash (declared so the script's slot is known; every key read
--          shares its hash tag)
-- ARGV[1]  base ("{cs}")
-- ARGV[2]  the list's id
-- ARGV[3]  the table's bucket count (a number N lives in bucket N % count, field
--          N // count: keys.bucket_of)
-- ARGV[4]  the first bucket to read
-- ARGV[5]  the field after which the first bucket is read (-1: from its start)
-- ARGV[6]  buckets to read at most
-- ARGV[7]  entries to return at most
-- ARGV[8]  the stored status codes kept (p, a, P, d; x for an active entry whose
--          expiry is at or before ARGV[9]); "" keeps every status
-- ARGV[9]  now (epoch seconds)
-- ARGV[10..] the numbers kept, as inclusive ranges: low, high, low, high...
--
-- Returns {next bucket, next field, bucket, field, record, bucket, field, record...}:
-- the position to go on from (the next bucket from its start when the next field is
-- -1; past the last bucket when the list is done) then the entries found.

local prefix = ARGV[1] .. K_EXACT .. ARGV[2] .. ':'
local count = tonumber(ARGV[3])
local first = tonumber(ARGV[4])
local after = tonumber(ARGV[5])
local last = math.min(count, first + tonumber(ARGV[6])) - 1
local limit = tonumber(ARGV[7])
local codes = ARGV[8]
local now = tonumber(ARGV[9])
local ranges = {}
for i = 10, #ARGV, 2 do
  ranges[#ranges + 1] = {tonumber(ARGV[i]), tonumber(ARGV[i + 1])}
end

local function kept(record)
  if codes == '' then
    return true
  end
  local code = string.sub(record, 1, 1)
  if code == 'a' then
    local expires = string.match(record, '^a;[^;]*;(%d+)')
    if expires and tonumber(expires) <= now then
      code = 'x'
    end
  end
  return string.find(codes, code, 1, true) ~= nil
end

local out = {0, -1}
local found = 0
for bucket = first, last do
  local floor = -1
  if bucket == first then
    floor = after
  end
  local flat = redis.call('HGETALL', prefix .. bucket)
  local fields = {}
  local records = {}
  for i = 1, #flat, 2 do
    local field = tonumber(flat[i])
    if field > floor then
      local number = field * count + bucket
      for _, range in ipairs(ranges) do
        if number >= range[1] and number <= range[2] then
          if kept(flat[i + 1]) then
            fields[#fields + 1] = field
            records[field] = flat[i + 1]
          end
          break
        end
      end
    end
  end
  table.sort(fields)
  for _, field in ipairs(fields) do
    out[#out + 1] = bucket
    out[#out + 1] = field
    out[#out + 1] = records[field]
    found = found + 1
    if found >= limit then
      out[1] = bucket
      out[2] = field
      return out
    end
  end
end
out[1] = last + 1
return out
