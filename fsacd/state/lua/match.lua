-- match.lua: one matching pass of a queue in one round trip: the calls heading it now, each
-- given the next free agent(s) its strategy prefers, read from the free index.
--
-- KEYS[1]  events stream
-- KEYS[2]  queue:<q>:waiting   zset of waiting calls
-- KEYS[3]  queue:<q>:members   zset agent id -> position
-- KEYS[4]  queue:<q>           hash; rr_last (round-robin pointer, set to the position of the
--                              last agent taken), paused ("1": no offers), index_strategy
-- KEYS[5]  queue:<q>:free      zset: the free index (see _lib.lua, free_score)
-- KEYS[6…] optional: sets of agents not to offer now (presence: ext_busy, unregistered, dnd)
-- ARGV[1]  key prefix (agent and call keys are built from it)
-- ARGV[2]  now
-- ARGV[3]  queue name
-- ARGV[4]  strategy (fsacd/core/strategies.py names); the index is rebuilt when it was
--          scored for another one
-- ARGV[5]  offer ids (new, unique), comma-separated: one per call to serve at most
-- ARGV[6]  want: agents per call (0 = every free agent: ring-all, one call)
-- ARGV[7]  random strategy only: fractions in [0, 1), comma-separated, one per pick
-- ARGV[8…] agents not to offer now (busy elsewhere: presence)
-- Returns false when nothing was offered, else the offers as reserve.lua returns them:
-- {offer_id, call_id, owner, n, agent_id × n, offer_id, …}.
-- The orders are those of fsacd/core/strategies.py: first-available, ring-all by position;
-- round-robin by position after rr_last, then from the start; fewest-calls, least-talk-time
-- by their count or time, then position, then id (folded into the index's score); most-idle
-- by idle time, equal times by position, then id; random uniformly (the caller's fractions). An index entry that is no longer free (it should not happen) is dropped.
-- Index entries change only after every pick is made (the iterators page through it).
-- Agents whose ready_at has come are freed first (free_due_agents, _lib.lua).

local queue, strategy, want = ARGV[3], ARGV[4], tonumber(ARGV[6])
local offer_ids = split(ARGV[5])
if #offer_ids == 0 then
  return false
end
local q = redis.call('HMGET', KEYS[4], 'paused', 'index_strategy', 'rr_last')
if q[1] == '1' then
  return false
end

-- agents whose wrap-up or delay is over join the index now, not at the next timer
free_due_agents()

-- the index was scored for another strategy (or never built): build it again
if q[2] ~= strategy then
  redis.call('DEL', KEYS[5])
  redis.call('HSET', KEYS[4], 'index_strategy', strategy)
  local members = redis.call('ZRANGE', KEYS[3], 0, -1)
  for _, id in ipairs(members) do
    sync_free_in(id, queue, redis.call('HMGET', agent_key(id), unpack(AGENT_INDEX_FIELDS)))
  end
end

local calls = redis.call('ZRANGE', KEYS[2], 0, #offer_ids - 1)
if #calls == 0 then
  return false
end

local excluded = {}
for i = 8, #ARGV do
  excluded[ARGV[i]] = true
end

-- next_agent(): the next candidate in the strategy's order (nil when there is none); each
-- is returned once; candidates are checked for freedom by the caller.
local next_agent
local CHUNK = 32
if strategy == 'most-idle' then
  local group, gi, last = {}, 1, '-inf'
  next_agent = function()
    while gi > #group do
      local nxt = redis.call('ZRANGEBYSCORE', KEYS[5], last, '+inf', 'WITHSCORES', 'LIMIT', 0, 1)
      if not nxt[1] then
        return nil
      end
      local s = nxt[2]
      local ids = redis.call('ZRANGEBYSCORE', KEYS[5], s, s)
      group = {}
      for _, id in ipairs(ids) do
        group[#group + 1] = {id, tonumber(redis.call('ZSCORE', KEYS[3], id)) or 0}
      end
      table.sort(group, function(x, y)
        if x[2] ~= y[2] then
          return x[2] < y[2]
        end
        return x[1] < y[1]
      end)
      gi = 1
      last = '(' .. s
    end
    gi = gi + 1
    return group[gi - 1][1]
  end
elseif strategy == 'random' then
  local fractions, fi, seen_r = split(ARGV[7]), 1, {}
  local fallback = nil
  next_agent = function()
    while fi <= #fractions do
      local f = tonumber(fractions[fi]) or 0
      fi = fi + 1
      local card = redis.call('ZCARD', KEYS[5])
      if card == 0 then
        return nil
      end
      local pick = redis.call('ZRANGE', KEYS[5], math.floor(f * card), math.floor(f * card))
      if pick[1] and not seen_r[pick[1]] then
        seen_r[pick[1]] = true
        return pick[1]
      end
    end
    -- out of fractions (picks collided): the rest in index order
    if not fallback then
      fallback = redis.call('ZRANGE', KEYS[5], 0, -1)
    end
    while #fallback > 0 do
      local id = table.remove(fallback, 1)
      if not seen_r[id] then
        seen_r[id] = true
        return id
      end
    end
    return nil
  end
else
  -- by score, then id: first-available, ring-all (position), fewest-calls, least-talk-time
  -- (their count or time, then position); round-robin starts after rr_last and wraps
  local ranges = {{'-inf', '+inf'}}
  if strategy == 'round-robin' and q[3] and q[3] ~= '' then
    ranges = {{'(' .. q[3], '+inf'}, {'-inf', q[3]}}
  end
  local ri, off, buf, bi = 1, 0, {}, 1
  next_agent = function()
    while bi > #buf do
      if ri > #ranges then
        return nil
      end
      buf = redis.call('ZRANGEBYSCORE', KEYS[5], ranges[ri][1], ranges[ri][2],
                       'LIMIT', off, CHUNK)
      bi = 1
      off = off + CHUNK
      if #buf < CHUNK then
        ri = ri + 1
        off = 0
        if #buf == 0 then
          buf = {}
        end
      end
    end
    bi = bi + 1
    return buf[bi - 1]
  end
end

-- index changes wait until every pick is made (the iterators page through the index)
local taken_ever, stale, reserved = {}, {}, {}
local function take()
  local taken = {}
  while true do
    local id = next_agent()
    if not id then
      break
    end
    local skip = excluded[id] or taken_ever[id]
    for i = 6, #KEYS do
      if not skip and redis.call('SISMEMBER', KEYS[i], id) == 1 then
        skip = true
      end
    end
    if not skip then
      if agent_free(id, KEYS[3]) then
        taken_ever[id] = true
        taken[#taken + 1] = id
        if want > 0 and #taken >= want then
          break
        end
      else
        stale[#stale + 1] = id
      end
    end
  end
  return taken
end

local out = offer_calls(queue, calls, offer_ids, want, take, KEYS[2], KEYS[3], KEYS[4],
                        function(id) reserved[#reserved + 1] = id end, false)
for _, id in ipairs(stale) do
  redis.call('ZREM', KEYS[5], id)
end
for _, id in ipairs(reserved) do
  sync_free(id)
end
return out
