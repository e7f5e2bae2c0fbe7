-- callscreen entry records (model.EntryRecord): the one place the writers of entries
-- (entries.lua, import.lua) read and write a record, its trail of transitions and its
-- first-enforced mark, and keep the list's status indexes (rec_index, the one function
-- that writes them). Put before their body by callscreen.schema.scripts.
--
-- A record is "s;batch;expires;removal;trail;extid":
--   s        stored status: p pending, a active, P permanent, d deleted (soft)
--   batch    the change that gave the entry its reason (what the lookup reads)
--   expires  epoch seconds, or empty
--   removal  the change that removed it (purge checks it), or empty
--   trail    [CREATED]["~"]{["!"]CODE BATCH}, below
--   extid    everything after the fifth ';' (it may hold ';')
-- Trailing empty fields are dropped, but trail and extid are written together or not
-- at all; a record of exactly five fields is the earlier "s;batch;expires;removal;extid".
-- lookup.lua's enforced() and the reports read only s, batch and expires, whose places
-- never change.
--
-- The trail: CREATED is the batch that created the entry when it is not `batch` (so a
-- bulk-loaded entry stores none: "a;17"); then one item per transition since, in order,
-- each a code and the batch of that change (its who and when): u updated (an add or an
-- import row that changed it), a approved, P approved permanently, p unapproved,
-- d removed, r restored. Adding is the creation itself; expiring needs no write (the
-- lookup compares the expiry with the clock), so neither has a code.
-- First enforced: "~" says the entry has never been active or permanent (it was created
-- pending); the item of the change that first makes it active or permanent takes the
-- "~"'s place with a "!" in front. With neither, the entry was enforced from its
-- creation (or was written before the trail existed: then its creation stands in).
-- A bulk change writes one short item per entry, pointing at its one batch record.

-- the six fields of a record
local function rec_parse(rec)
  local f, pos, n = {}, 1, 0
  while n < 5 do
    local s = string.find(rec, ';', pos, true)
    if not s then break end
    n = n + 1
    f[n] = string.sub(rec, pos, s - 1)
    pos = s + 1
  end
  f[n + 1] = string.sub(rec, pos)  -- the last field: the extid may hold ';'
  for j = n + 2, 6 do f[j] = '' end
  if n == 4 then f[5], f[6] = '', f[5] end  -- five fields: the earlier format
  return f
end

local function rec_encode(f)
  if f[5] ~= '' or f[6] ~= '' then return table.concat(f, ';', 1, 6) end
  local n = 4
  while n > 2 and f[n] == '' do n = n - 1 end
  return table.concat(f, ';', 1, n)
end

-- the batch that created the entry
local function rec_created(f)
  local c = string.match(f[5], '^%d*')
  if c == '' then return f[2] end
  return c
end

-- f (a new record for an existing entry, whose batch f[2] may differ from old's) takes
-- old's creation batch and trail
local function rec_inherit(f, old)
  local c = rec_created(old)
  if c == f[2] then c = '' end
  f[5] = c .. string.match(old[5], '^%d*(.*)$')
end

-- a new entry: f[5] holds at most its creation batch (dropped when it is f[2]); one
-- created pending has never been enforced
local function rec_new(f)
  if f[5] == f[2] then f[5] = '' end
  if f[1] == 'p' then f[5] = f[5] .. '~' end
end

local function rec_enforcing(s)
  return s == 'a' or s == 'P'
end

-- note in f's trail that the change of batch `by` did `code` (f[1] already the new
-- status): the first change to make a never-enforced entry enforced is marked "!"
local function rec_stamp(f, code, by)
  if by == nil or by == '' then return end
  local c, t = string.match(f[5], '^(%d*)(.*)$')
  local mark = ''
  if rec_enforcing(f[1]) then
    local at = string.find(t, '~', 1, true)
    if at then
      t = string.sub(t, 1, at - 1) .. string.sub(t, at + 1)
      mark = '!'
    end
  end
  f[5] = c .. t .. mark .. code .. by
end

-- The status indexes ({cs}:st:L:p pending, {cs}:st:L:d removed; keys.Keys.status_index):
-- one zset per list and indexed status, member the entry's member in the expiry index
-- ("BUCKET:FIELD" or "p:DIGITS"), score its place in storage order, the order
-- services.entries.page_entries reads a list in (keys.storage_score: the same function),
-- so that a page of one status resumes at a score. Every writer of a record calls
-- rec_index with the stored status before (nil or '' for a new entry) and after (nil
-- for a deleted record).
local REC_INDEXED = { p = true, d = true }
local rec_width = nil

-- the score of `member` in a status index
local function rec_order(base, member)
  if string.sub(member, 1, 2) == 'p:' then
    local score = -(11 ^ 15)
    for i = 1, math.min(#member - 2, 15) do
      score = score + (string.byte(member, i + 2) - 47) * 11 ^ (15 - i)
    end
    return score
  end
  if rec_width == nil then
    local buckets = redis.call('HGET', base .. K_META, 'buckets') or DEFAULT_BUCKETS
    rec_width = math.floor(ORDER_SPAN / tonumber(buckets))
  end
  local bucket, field = string.match(member, '^(%d+):(%d+)$')
  return tonumber(bucket) * rec_width + tonumber(field)
end

-- The number indexes ({cs}:nd:L:S, {cs}:nx:L:S:LOW; keys.py): for each stored status
-- S (p, a, P, d), the numbers (E.164 digits) of list `list_id`'s exact entries stored
-- with it, in chunks of at most NUMBER_CHUNK numbers, each a zset of scores 0 (digit
-- order: read BYLEX) small enough to stay a listpack; the directory holds each chunk's
-- lowest number ("0" for the first, which is never removed: no digits sort before it).
-- A full chunk is split in two halves before a number is added to it (a number past
-- its last starts a new chunk instead: numbers added in order fill their chunks); a
-- chunk left empty leaves the directory (chunks are never merged). search.lua reads them.
-- rec_index keeps them: a number moves from one status's index to the other's when
-- its entry's stored status changes, and leaves when its record is deleted.
local rec_buckets = nil

-- the E.164 digits of the exact entry whose member is "BUCKET:FIELD"
local function rec_digits(base, member)
  if rec_buckets == nil then
    rec_buckets = tonumber(redis.call('HGET', base .. K_META, 'buckets') or DEFAULT_BUCKETS)
  end
  local bucket, field = string.match(member, '^(%d+):(%d+)$')
  -- below 10^15 < 2^53: exact in a double
  return string.format('%.0f', tonumber(field) * rec_buckets + tonumber(bucket))
end

-- the lowest number of the chunk that holds (or would hold) `digits`; nil: no chunk yet
local function rec_chunk_of(dir, digits)
  return redis.call('ZREVRANGEBYLEX', dir, '[' .. digits, '-', 'LIMIT', 0, 1)[1]
end

-- the sizes of the chunks this script call has looked at: only this call changes them
-- while it runs, so each is read once (a ZCARD less per write)
local rec_cards = {}

local function rec_card(chunk)
  local n = rec_cards[chunk]
  if n == nil then
    n = redis.call('ZCARD', chunk)
    rec_cards[chunk] = n
  end
  return n
end

-- add `digits` to (present) or remove it from the number index of status `code`
local function rec_numbers(base, list_id, code, digits, present)
  local dir = base .. K_NUMDIR .. list_id .. ':' .. code
  local chunks = base .. K_NUMIDX .. list_id .. ':' .. code .. ':'
  local low = rec_chunk_of(dir, digits)
  if not present then
    if low == nil then return end
    local chunk = chunks .. low
    if redis.call('ZREM', chunk, digits) == 1 then
      local left = rec_cards[chunk]
      if left == nil then
        left = redis.call('ZCARD', chunk)  -- after the ZREM
      else
        left = left - 1
      end
      rec_cards[chunk] = left
      if left == 0 and low ~= '0' then redis.call('ZREM', dir, low) end
    end
    return
  end
  if low == nil then
    low = '0'
    redis.call('ZADD', dir, 0, low)
  end
  local chunk = chunks .. low
  local size = rec_card(chunk)
  if size >= NUMBER_CHUNK then
    if redis.call('ZSCORE', chunk, digits) then return end
    if #redis.call('ZRANGEBYLEX', chunk, '(' .. digits, '+', 'LIMIT', 0, 1) == 0 then
      -- past the full chunk's last number (numbers added in order, as an import of a
      -- sorted file adds them): a new chunk starts with it, the full one stays full
      redis.call('ZADD', dir, 0, digits)
      redis.call('ZADD', chunks .. digits, 0, digits)
      rec_cards[chunks .. digits] = 1
      return
    end
    -- split: the upper half becomes a chunk of its own, named by its lowest number
    local half = math.floor(NUMBER_CHUNK / 2)
    local upper = redis.call('ZRANGE', chunk, half, half)[1]
    redis.call('ZRANGESTORE', chunks .. upper, chunk, half, -1)
    redis.call('ZREMRANGEBYRANK', chunk, half, -1)
    redis.call('ZADD', dir, 0, upper)
    rec_cards[chunk] = half
    rec_cards[chunks .. upper] = size - half
    chunk = chunks .. rec_chunk_of(dir, digits)
    size = rec_cards[chunk]
  end
  rec_cards[chunk] = size + redis.call('ZADD', chunk, 0, digits)
end

-- keep list `list_id`'s status indexes and its number indexes right for `member` going
-- from stored status `from` to `to` (nil or '': no entry)
local function rec_index(base, list_id, member, from, to)
  if from == to then return end
  if string.sub(member, 1, 2) ~= 'p:' then
    local digits = rec_digits(base, member)
    if from and from ~= '' then rec_numbers(base, list_id, from, digits, false) end
    if to and to ~= '' then rec_numbers(base, list_id, to, digits, true) end
  end
  if from and REC_INDEXED[from] then
    redis.call('ZREM', base .. K_STATUS .. list_id .. ':' .. from, member)
  end
  if to and REC_INDEXED[to] then
    redis.call('ZADD', base .. K_STATUS .. list_id .. ':' .. to,
      string.format('%.0f', rec_order(base, member)), member)
  end
end
