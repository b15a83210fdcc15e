-- _lib.lua: helpers that fsacd/scripts.py puts in front of every script (not a script itself).
--
-- Conventions shared by all scripts:
--   KEYS[1]  the events stream (<prefix>events)
--   ARGV[1]  the key prefix (e.g. "fsacd:"): agent, queue and call keys that a script only
--            learns while it runs are built from it (single Redis server, not cluster)
--   ARGV[2]  now: seconds since the epoch, a string with millisecond precision
-- Key names built here must match fsacd/keys.py (tests/test_store.py checks it):
--   <prefix>agent:<id>  <prefix>queue:<name>:members  <prefix>queue:<name>:waiting
--   <prefix>call:<id>   <prefix>ready   <prefix>calls   channel <prefix>wake
-- Numbers written to Redis are formatted here (never Lua's tostring, which keeps only 14
-- significant digits): times with 3 decimals, scores as integers.

local PREFIX = ARGV[1]
local NOW_S = ARGV[2]
local NOW = tonumber(NOW_S)
local EVENTS = KEYS[1]
local EVENTS_MAXLEN = 100000
local READY = PREFIX .. 'ready'
local CALLS = PREFIX .. 'calls'
local WAKE = PREFIX .. 'wake'

local function fmt_time(x)
  return string.format('%.3f', x)
end

local function num(x)
  return tonumber(x) or 0
end

local function agent_key(id)
  return PREFIX .. 'agent:' .. id
end

local function members_key(q)
  return PREFIX .. 'queue:' .. q .. ':members'
end

local function free_key(q)
  return PREFIX .. 'queue:' .. q .. ':free'
end

local function queue_key(q)
  return PREFIX .. 'queue:' .. q
end

local function waiting_key(q)
  return PREFIX .. 'queue:' .. q .. ':waiting'
end

local function call_key(id)
  return PREFIX .. 'call:' .. id
end

local function split(s)
  local out = {}
  if not s or s == '' then
    return out
  end
  for part in string.gmatch(s, '[^,]+') do
    out[#out + 1] = part
  end
  return out
end

-- XADD an event; fields is a flat list {name, value, ...}; empty values are left out.
local function emit(etype, fields)
  local args = {'XADD', EVENTS, 'MAXLEN', '~', EVENTS_MAXLEN, '*', 'type', etype, 'ts', NOW_S}
  for i = 1, #fields, 2 do
    local v = fields[i + 1]
    if v and v ~= '' then
      args[#args + 1] = fields[i]
      args[#args + 1] = v
    end
  end
  redis.call(unpack(args))
end

-- PUBLISH each queue at most once per script run.
local woken = {}
local woken_list = {}
local function wake(q)
  if q and q ~= '' and not woken[q] then
    woken[q] = true
    woken_list[#woken_list + 1] = q
    redis.call('PUBLISH', WAKE, q)
  end
end

-- The agent's queue names (from its `queues` JSON field), sorted.
local function agent_queues(id)
  local raw = redis.call('HGET', agent_key(id), 'queues')
  local out = {}
  if not raw or raw == '' then
    return out
  end
  local ok, t = pcall(cjson.decode, raw)
  if ok and type(t) == 'table' then
    for q, _ in pairs(t) do
      out[#out + 1] = q
    end
  end
  table.sort(out)
  return out
end

-- The free index (queue:<q>:free, a zset): a queue's free members scored by what the
-- queue's strategy (the field index_strategy of queue:<q>, set by match.lua) orders them by
-- first: most-idle the idle-since time (last call's end, else login), fewest-calls the calls
-- answered, least-talk-time the talk time, the others the position. Ties are broken by
-- position, then id, where it is read (match.lua). Kept by sync_free wherever an agent may
-- become free or stop being free; fsacd/core/strategies.py is the reference of the orders.
local function free_score(strategy, a, pos)
  -- a = {status, state, ready_at, last_call_end, login_at, answered, talk_time}
  if strategy == 'most-idle' then
    if a[4] and a[4] ~= '' then
      return a[4]
    end
    if a[5] and a[5] ~= '' then
      return a[5]
    end
    return '0'
  elseif strategy == 'fewest-calls' then
    return a[6] or '0'
  elseif strategy == 'least-talk-time' then
    return a[7] or '0'
  end
  return pos
end

local AGENT_INDEX_FIELDS = {'status', 'state', 'ready_at', 'last_call_end', 'login_at',
                            'answered', 'talk_time'}

local function is_free_row(a)
  return a[1] == 'available' and (a[2] == 'idle' or a[2] == 'wrap-up') and num(a[3]) <= NOW
end

-- Put the agent in (or take it out of) the free index of one queue it is a member of.
local function sync_free_in(id, q, a)
  local pos = redis.call('ZSCORE', members_key(q), id)
  if pos and is_free_row(a) then
    local strategy = redis.call('HGET', queue_key(q), 'index_strategy') or ''
    redis.call('ZADD', free_key(q), free_score(strategy, a, pos), id)
  else
    redis.call('ZREM', free_key(q), id)
  end
end

-- Bring the free index of each of the agent's queues up to date; returns the agent's row
-- (AGENT_INDEX_FIELDS) and its queues.
local function sync_free(id)
  local a = redis.call('HMGET', agent_key(id), unpack(AGENT_INDEX_FIELDS))
  local queues = agent_queues(id)
  for _, q in ipairs(queues) do
    sync_free_in(id, q, a)
  end
  return a, queues
end

-- Wake the agent's queues if it is available and its ready_at has passed, after bringing
-- their free indexes up to date (scripts call this wherever an agent may have become free;
-- where it stops being free, sync_free).
local function wake_agent(id)
  local a, queues = sync_free(id)
  if a[1] == 'available' and num(a[3]) <= NOW then
    for _, q in ipairs(queues) do
      wake(q)
    end
  end
end

-- Free = available, idle (or wrap-up that is over), past ready_at, member of the queue.
local function agent_free(id, members)
  local a = redis.call('HMGET', agent_key(id), 'status', 'state', 'ready_at')
  if a[1] ~= 'available' then
    return false
  end
  if a[2] ~= 'idle' and a[2] ~= 'wrap-up' then
    return false
  end
  if num(a[3]) > NOW then
    return false
  end
  return redis.call('ZSCORE', members, id) ~= false
end

-- Release an agent still reserved/ringing for (call_id, offer_id), applying the outcome of
-- its leg. rules = {max_no_answer, no_answer_delay, busy_delay, reject_delay} or nil (no
-- penalty). Returns true if the agent was released.
local PENALISED = {['no-answer'] = true, ['unreachable'] = true, ['busy'] = true,
                   ['reject'] = true, ['error'] = true}
local function release_agent(id, call_id, offer_id, outcome, rules, queue, reason)
  local key = agent_key(id)
  local a = redis.call('HMGET', key, 'state', 'call', 'offer', 'status')
  if a[1] ~= 'reserved' and a[1] ~= 'ringing' then
    return false
  end
  if a[2] ~= call_id or (offer_id and a[3] ~= offer_id) then
    return false
  end
  local delay = 0
  local streak = nil
  if rules and PENALISED[outcome] then
    if outcome == 'no-answer' or outcome == 'unreachable' then
      redis.call('HINCRBY', key, 'missed', 1)
      streak = redis.call('HINCRBY', key, 'no_answer_streak', 1)
      delay = rules[2]
    elseif outcome == 'busy' then
      delay = rules[3]
    elseif outcome == 'reject' then
      delay = rules[4]
    else
      delay = rules[2]
    end
    emit('agent-missed', {'agent', id, 'call', call_id, 'queue', queue, 'offer', a[3],
                          'outcome', outcome, 'streak', streak and tostring(streak) or ''})
  end
  redis.call('HSET', key, 'state', 'idle', 'state_since', NOW_S, 'call', '', 'offer', '',
             'owner', '')
  if delay > 0 then
    local ready = fmt_time(NOW + delay)
    redis.call('HSET', key, 'ready_at', ready)
    redis.call('ZADD', READY, ready, id)
  end
  emit('agent-state', {'agent', id, 'state', 'idle', 'call', call_id, 'queue', queue,
                       'reason', reason})
  if streak and rules[1] > 0 and streak >= rules[1] and a[4] == 'available' then
    redis.call('HSET', key, 'status', 'on-break', 'break_reason', outcome)
    emit('agent-status', {'agent', id, 'status', 'on-break', 'old', a[4], 'reason', outcome})
  end
  wake_agent(id)
  return true
end

-- Agents whose ready_at has come (the ready zset): wrap-up -> idle, the free index of their
-- queues brought up to date, their queues woken (free_due.lua; match.lua first, so the index
-- is exact at the moment it is read).
local function free_due_agents()
  local due = redis.call('ZRANGEBYSCORE', READY, '-inf', NOW_S)
  for _, id in ipairs(due) do
    redis.call('ZREM', READY, id)
    local key = agent_key(id)
    local a = redis.call('HMGET', key, 'state', 'ready_at')
    if a[1] then
      if num(a[2]) > NOW then
        redis.call('ZADD', READY, a[2], id)
      else
        if a[1] == 'wrap-up' then
          redis.call('HSET', key, 'state', 'idle', 'state_since', NOW_S)
          emit('agent-state', {'agent', id, 'state', 'idle', 'reason', 'wrap-up-over'})
        end
        wake_agent(id)
      end
    end
  end
end
