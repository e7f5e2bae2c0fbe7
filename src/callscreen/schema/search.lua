-- callscreen: a bounded chunk of a list's exact entries stored with one status whose
-- number starts with given digits, in number order (digit by digit), read from that
-- status's number index ({cs}:nd:L:S and its chunks {cs}:nx:L:S:LOW, kept by
-- record.lua's rec_numbers). Read only.
-- Run again from the number it returns until the page is full or the range is done:
-- each call reads at most ARGV[7] numbers of the index (and the record of each), so
-- Redis is never held long (the call path shares it), and a call costs what it reads,
-- whatever the list's size.
--
-- KEYS[1]  the meta hash (declared so the script's slot is known; every key read
--          shares its hash tag)
-- ARGV[1]  base ("{cs}")
-- ARGV[2]  the list's id
-- ARGV[3]  the table's bucket count (a number N lives in bucket N % count, field
--          N // count: keys.bucket_of)
-- ARGV[4]  the stored status whose index is read (p, a, P, d)
-- ARGV[5]  the digits the numbers start with
-- ARGV[6]  the number after which to read ("": from the first); it starts with ARGV[5]
-- ARGV[7]  numbers of the index to read at most
-- ARGV[8]  entries to return at most; 0: count them only, return none
-- ARGV[9]  "": keep every entry read (no record is read when counting); else the
--          codes kept: a for an active entry whose expiry is not yet at ARGV[10], x
--          for one whose expiry is
-- ARGV[10] now (epoch seconds)
--
-- Returns {last, done, read, kept, number, record, number, record...}: the last number
-- read ("": none), 1 when no number past it starts with the digits (0: maybe more), how
-- many numbers were read and how many entries kept, then those entries in number order
-- (none when counting).

local base, list_id, status = ARGV[1], ARGV[2], ARGV[4]
local count = tonumber(ARGV[3])
local starting, after = ARGV[5], ARGV[6]
local budget = tonumber(ARGV[7])
local limit = tonumber(ARGV[8])
local codes = ARGV[9]
local now = tonumber(ARGV[10])
local dir = base .. K_NUMDIR .. list_id .. ':' .. status
local chunks = base .. K_NUMIDX .. list_id .. ':' .. status .. ':'
local exact = base .. K_EXACT .. list_id .. ':'
-- ':' is the byte after '9': every number starting with the digits sorts before it
local stop = '(' .. starting .. ':'
local from, seek = '[' .. starting, starting
if after ~= '' then
  from, seek = '(' .. after, after
end

local function kept(record)
  local code = string.sub(record, 1, 1)
  if code == 'a' then
    local expires = string.match(record, '^a;[^;]*;(%d+)')
    if expires and tonumber(expires) <= now then
      code = 'x'
    end
  end
  return string.find(codes, code, 1, true) ~= nil
end

local out = {'', 0, 0, 0}
local counting = limit == 0
-- the chunk that holds the first number to read: the last whose lowest number is at
-- or before it
local low = redis.call('ZREVRANGEBYLEX', dir, '[' .. seek, '-', 'LIMIT', 0, 1)[1]
if low == nil then
  out[2] = 1
  return out
end
local read, found, last = 0, 0, ''
local cursor = '[' .. low
while true do
  local lows = redis.call('ZRANGEBYLEX', dir, cursor, stop, 'LIMIT', 0, 16)
  if #lows == 0 then
    out[1], out[2], out[3], out[4] = last, 1, read, found
    return out
  end
  for _, lo in ipairs(lows) do
    local numbers = redis.call('ZRANGEBYLEX', chunks .. lo, from, stop, 'LIMIT', 0, budget - read)
    for _, number in ipairs(numbers) do
      read = read + 1
      last = number
      local record = true
      if not (counting and codes == '') then
        local n = tonumber(number)
        local bucket = math.fmod(n, count)  -- exact for integers below 2^53 (not n % count)
        record = redis.call('HGET', exact .. string.format('%.0f', bucket),
          string.format('%.0f', (n - bucket) / count))
      end
      if record and (codes == '' or kept(record)) then
        found = found + 1
        if not counting then
          out[#out + 1] = number
          out[#out + 1] = record
          if found >= limit then
            out[1], out[3], out[4] = last, read, found
            return out
          end
        end
      end
    end
    if read >= budget then
      out[1], out[3], out[4] = last, read, found
      return out
    end
  end
  cursor = '(' .. lows[#lows]
end
